"""The registry's two append-only sequences: revocations (the feed) and the audit log.

Part of :class:`~edgetrust.onboarding.store.SqlRegistryStore` (see that module for the
concurrency guarantees and the lock order). Both sequences are appended by
:mod:`edgetrust.onboarding.ledger` (gapless, commit-ordered ``seq``; the audit entries hash
chained); this module holds the revocation writes and both sequences' reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Connection, func, select

from edgetrust.errors import InvalidRequestError, NotFoundError, RevokedError
from edgetrust.onboarding import ledger
from edgetrust.onboarding import records as rec
from edgetrust.onboarding import schema as s
from edgetrust.onboarding.database import Database
from edgetrust.onboarding.records import (
    MAX_NAME,
    MAX_REASON,
    AuditChain,
    AuditEvent,
    AuditRecord,
    DeviceStatus,
    RevocationEvent,
    RevocationKind,
    aware,
    check_serial,
    check_text,
    check_ueid,
)

__all__ = ["SqlLedger"]

_ACTIVE = DeviceStatus.ACTIVE.value
_REVOKED = DeviceStatus.REVOKED.value


class SqlLedger:
    """The revocation and audit methods of :class:`~edgetrust.onboarding.store.SqlRegistryStore`
    (a mixin)."""

    _db: Database

    def revoke_device(
        self, ueid: bytes, *, reason: str, actor: str, now: datetime
    ) -> RevocationEvent:
        """Revoke a device and all its certificates (feed event + audit entry, one transaction).

        Idempotent: a revoked device returns its existing event. Unknown: :class:`NotFoundError`.
        """
        check_ueid(ueid)
        check_text("reason", reason, MAX_REASON, allow_empty=True)
        check_text("actor", actor, MAX_NAME)
        now = aware(now)
        ueid_hex = ueid.hex()
        d, c = s.devices, s.certificates

        def work(conn: Connection) -> RevocationEvent:
            self._db.serialize(conn, "audit")  # first: the lock order (onboarding.store)
            changed = conn.execute(
                d.update()
                .where(d.c.ueid == ueid_hex, d.c.status == _ACTIVE)
                .values(status=_REVOKED, revoked_at=now, updated_at=now)
                .returning(d.c.ueid)
            ).first()
            if changed is None:
                if conn.execute(select(d.c.ueid).where(d.c.ueid == ueid_hex)).first() is None:
                    raise NotFoundError(f"no device {ueid_hex} in the registry")
                return ledger.latest_revocation(conn, ueid_hex, None)
            certs = conn.execute(
                c.update()
                .where(c.c.ueid == ueid_hex, c.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            event = ledger.append_revocation(
                self._db,
                conn,
                RevocationKind.DEVICE,
                ueid_hex=ueid_hex,
                serial_hex=None,
                reason=reason,
                actor=actor,
                now=now,
            )
            detail = {"reason": reason, "revocation_seq": event.seq, "certificates": certs}
            audit = AuditEvent(
                actor=actor, action="device.revoked", subject=f"device:{ueid_hex}", detail=detail
            )
            ledger.append_audit(self._db, conn, audit, now)
            return event

        return self._db.write(work)

    def revoke_certificate(
        self, serial: int, *, reason: str, actor: str, now: datetime
    ) -> RevocationEvent:
        """Revoke one certificate; idempotent like :meth:`revoke_device`."""
        check_serial(serial)
        check_text("reason", reason, MAX_REASON, allow_empty=True)
        check_text("actor", actor, MAX_NAME)
        now = aware(now)
        serial_hex = rec.serial_hex(serial)
        c = s.certificates

        def work(conn: Connection) -> RevocationEvent:
            self._db.serialize(conn, "audit")  # first: the lock order (onboarding.store)
            changed = conn.execute(
                c.update()
                .where(c.c.serial == serial_hex, c.c.revoked_at.is_(None))
                .values(revoked_at=now)
                .returning(c.c.ueid)
            ).first()
            if changed is None:
                row = conn.execute(select(c.c.ueid).where(c.c.serial == serial_hex)).first()
                if row is None:
                    raise NotFoundError(f"no certificate {serial_hex} in the registry")
                return ledger.latest_revocation(conn, row.ueid, serial_hex)
            event = ledger.append_revocation(
                self._db,
                conn,
                RevocationKind.CERTIFICATE,
                ueid_hex=changed.ueid,
                serial_hex=serial_hex,
                reason=reason,
                actor=actor,
                now=now,
            )
            detail = {"reason": reason, "revocation_seq": event.seq, "ueid": changed.ueid}
            audit = AuditEvent(
                actor=actor,
                action="certificate.revoked",
                subject=f"certificate:{serial_hex}",
                detail=detail,
            )
            ledger.append_audit(self._db, conn, audit, now)
            return event

        return self._db.write(work)

    def is_revoked(self, *, ueid: bytes | None = None, serial: int | None = None) -> bool:
        """Whether the device, or the certificate (or its device), is revoked. Unknown: False."""
        if ueid is None and serial is None:
            raise InvalidRequestError("is_revoked needs a ueid or a serial")
        if ueid is not None:
            check_ueid(ueid)
        if serial is not None:
            check_serial(serial)
        d, c = s.devices, s.certificates

        def work(conn: Connection) -> bool:
            if ueid is not None:
                query = select(d.c.status).where(d.c.ueid == ueid.hex())
                if conn.execute(query).scalar() == _REVOKED:
                    return True
            if serial is not None:
                row = conn.execute(
                    select(c.c.revoked_at, d.c.status)
                    .join(d, d.c.ueid == c.c.ueid)
                    .where(c.c.serial == rec.serial_hex(serial))
                ).first()
                if row is not None and (row.revoked_at is not None or row.status == _REVOKED):
                    return True
            return False

        return self._db.read(work)

    def ensure_not_revoked(self, ueid: bytes) -> None:
        """Raise :class:`RevokedError` if the device is revoked (unknown devices pass)."""
        if self.is_revoked(ueid=ueid):
            raise RevokedError(f"device {ueid.hex()} is revoked")

    def revocations_since(self, after_seq: int, *, limit: int = 1000) -> list[RevocationEvent]:
        """The feed: events with ``seq > after_seq``, ascending, at most ``limit``."""
        if after_seq < 0 or limit < 1:
            raise InvalidRequestError("revocations_since needs after_seq >= 0 and limit >= 1")
        t = s.revocations
        query = select(t).where(t.c.seq > after_seq).order_by(t.c.seq).limit(limit)
        return [
            rec.revocation_event(row) for row in self._db.read(lambda c: c.execute(query).all())
        ]

    def revocation_head(self) -> int:
        """The highest revocation ``seq`` (0 when there is none)."""
        query = select(func.coalesce(func.max(s.revocations.c.seq), 0))
        return int(self._db.read(lambda c: c.execute(query).scalar_one()))

    # ------------------------------------------------------------------ audit log

    def append_audit(self, event: AuditEvent, *, now: datetime) -> AuditRecord:
        """Append one entry (e.g. ``attestation.refused``). There is no update or delete."""
        now = aware(now)
        return self._db.write(lambda conn: ledger.append_audit(self._db, conn, event, now))

    def audit_since(self, after_seq: int = 0, *, limit: int | None = None) -> list[AuditRecord]:
        """Entries with ``seq > after_seq``, ascending."""
        if after_seq < 0 or (limit is not None and limit < 1):
            raise InvalidRequestError("audit_since needs after_seq >= 0 and limit >= 1")
        a = s.audit
        query = select(a).where(a.c.seq > after_seq).order_by(a.c.seq)
        if limit is not None:
            query = query.limit(limit)
        return [rec.audit_record(r) for r in self._db.read(lambda c: c.execute(query).all())]

    def verify_audit_chain(self, *, expect_head: ledger.AuditHead | None = None) -> AuditChain:
        """Check that ``seq`` runs 1..n without gaps and every digest chains (or StoreError);
        with ``expect_head``, that the log still holds that head (or AuditAnchorError)."""
        return ledger.verify_chain(self._iter_audit(), expect_head=expect_head)

    def _iter_audit(self, batch: int = 2000) -> Iterator[AuditRecord]:
        after = 0
        while True:
            rows = self.audit_since(after, limit=batch)
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].seq
