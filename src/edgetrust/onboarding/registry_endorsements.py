"""The registry's endorsements: the reference values (and trust anchors) of each product and
firmware version, which the verifier appraises evidence against.

Part of :class:`~edgetrust.onboarding.store.SqlRegistryStore`; every change is audited in the
same transaction (see that module for the lock order).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from edgetrust.errors import NotFoundError
from edgetrust.onboarding import ledger
from edgetrust.onboarding import records as rec
from edgetrust.onboarding import schema as s
from edgetrust.onboarding.database import Database
from edgetrust.onboarding.records import (
    MAX_NAME,
    AuditEvent,
    Endorsement,
    EndorsementRecord,
    aware,
    check_text,
)

__all__ = ["SqlEndorsements"]


class SqlEndorsements:
    """The endorsement methods of :class:`~edgetrust.onboarding.store.SqlRegistryStore`
    (a mixin)."""

    _db: Database

    def put_endorsement(
        self, endorsement: Endorsement, *, actor: str, now: datetime
    ) -> EndorsementRecord:
        """Insert or replace the reference values of a product / firmware version (audited)."""
        now = aware(now)
        check_text("actor", actor, MAX_NAME)
        e = s.endorsements
        key = (
            e.c.product == endorsement.product,
            e.c.firmware_version == endorsement.firmware_version,
        )
        values = {
            "document": endorsement.document,
            "trust_anchors_pem": endorsement.trust_anchors_pem,
            "updated_at": now,
        }

        def work(conn: Connection) -> EndorsementRecord:
            self._db.serialize(conn, "audit")  # first: the lock order (onboarding.store)
            row = conn.execute(e.update().where(*key).values(**values).returning(*e.c)).first()
            replaced = row is not None
            if row is None:
                row = conn.execute(
                    e.insert()
                    .values(
                        product=endorsement.product,
                        firmware_version=endorsement.firmware_version,
                        created_at=now,
                        **values,
                    )
                    .returning(*e.c)
                ).one()
            subject = f"endorsement:{endorsement.product}/{endorsement.firmware_version}"
            detail = {"replaced": replaced, "bytes": len(endorsement.document.encode())}
            audit = AuditEvent(
                actor=actor, action="endorsement.put", subject=subject, detail=detail
            )
            ledger.append_audit(self._db, conn, audit, now)
            return rec.endorsement_record(row)

        return self._db.write(work)

    def get_endorsement(self, product: str, firmware_version: str) -> EndorsementRecord:
        """The endorsement of ``product`` / ``firmware_version``, or :class:`NotFoundError`."""
        e = s.endorsements
        query = select(e).where(e.c.product == product, e.c.firmware_version == firmware_version)
        row = self._db.read(lambda c: c.execute(query).first())
        if row is None:
            raise NotFoundError(
                f"no endorsement for product {product!r} firmware {firmware_version!r}"
            )
        return rec.endorsement_record(row)

    def list_endorsements(self, *, product: str | None = None) -> list[EndorsementRecord]:
        e = s.endorsements
        query = select(e).order_by(e.c.product, e.c.firmware_version)
        if product is not None:
            query = query.where(e.c.product == product)
        return [rec.endorsement_record(r) for r in self._db.read(lambda c: c.execute(query).all())]
