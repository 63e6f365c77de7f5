"""The device and certificate rows of the registry: the issuance transaction and their reads.

Part of :class:`~edgetrust.onboarding.store.SqlRegistryStore` (see that module for the
concurrency guarantees and the lock order). :meth:`SqlDevices.record_issuance` is the verifier's
hot write: nonce consumption, device refresh or registration, certificate insert and audit entry
in one transaction, on the driver's cursor (:mod:`edgetrust.onboarding.statements`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from edgetrust.errors import (
    DeviceConflictError,
    DuplicateRecordError,
    NotFoundError,
    RevokedError,
    StoreError,
)
from edgetrust.onboarding import ledger
from edgetrust.onboarding import records as rec
from edgetrust.onboarding import schema as s
from edgetrust.onboarding.database import Database
from edgetrust.onboarding.records import (
    MAX_NAME,
    AuditEvent,
    CertificateRecord,
    DeviceRecord,
    DeviceRegistration,
    DeviceStatus,
    IssuanceReceipt,
    NewCertificate,
    NonceClaim,
    aware,
    check_serial,
    check_text,
    check_ueid,
)
from edgetrust.onboarding.registry_nonces import consume_claim
from edgetrust.onboarding.statements import HotStatements

__all__ = ["SqlDevices"]


class SqlDevices:
    """The issuance and device methods of :class:`~edgetrust.onboarding.store.SqlRegistryStore`
    (a mixin)."""

    _db: Database
    _sql: HotStatements

    def record_issuance(
        self,
        *,
        device: DeviceRegistration,
        certificate: NewCertificate,
        actor: str,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        nonce: NonceClaim | None = None,
    ) -> IssuanceReceipt:
        """Record an issued certificate, registering or refreshing its device, in ONE transaction.

        Returns after the commit; hand the certificate out only then. The transaction also appends
        the audit entry ``certificate.issued`` (subject ``device:<ueid hex>``, ``detail`` plus the
        serial, SPIFFE ID, expiry, product and whether the device is new) and, when ``nonce`` is
        given, consumes it (errors as :meth:`consume_nonce`) and stores it on the certificate.
        Raises :class:`RevokedError` (revoked device), :class:`DeviceConflictError` (UEID known
        with another DeviceID key), :class:`DuplicateRecordError` (serial already recorded). On
        any error nothing at all is stored.
        """
        now = aware(now)
        check_text("actor", actor, MAX_NAME)
        facts: dict[str, Any] = dict(detail or {})
        ueid_hex = device.ueid.hex()
        serial = rec.serial_hex(certificate.serial)

        sql = self._sql
        certificate_row = (
            serial,
            ueid_hex,
            certificate.spiffe_id,
            sql.time(certificate.not_before),
            sql.time(certificate.not_after),
            certificate.pem,
            sql.time(now),
            None if nonce is None else nonce.value.hex(),
        )

        def work(conn: Connection) -> IssuanceReceipt:
            self._db.serialize(conn, "audit")  # first: see the lock order (module docstring)
            cursor = self._db.cursor(conn)
            if nonce is not None:
                consume_claim(cursor, sql, nonce, now)
            row, new_device = self._lock_or_create_device(cursor, device, now)
            if row.status is not DeviceStatus.ACTIVE:
                raise RevokedError(f"device {ueid_hex} is revoked")
            if row.device_id_fingerprint != device.device_id_fingerprint:
                raise DeviceConflictError(
                    f"device {ueid_hex} is registered with another DeviceID key"
                )
            try:
                cursor.execute(sql.certificate_insert, certificate_row)
            except self._db.driver_integrity_error as e:  # rolled back as we leave
                raise DuplicateRecordError(
                    f"certificate serial {serial} (or its nonce) is already recorded"
                ) from e
            facts.update(
                serial=serial,
                spiffe_id=certificate.spiffe_id,
                not_after=certificate.not_after.astimezone(UTC).isoformat(),
                product=device.product,
                new_device=new_device,
            )
            entry = ledger.append_audit(
                self._db,
                conn,
                AuditEvent(
                    actor=actor,
                    action="certificate.issued",
                    subject=f"device:{ueid_hex}",
                    detail=facts,
                ),
                now,
            )
            return IssuanceReceipt(
                device=row,
                certificate=CertificateRecord(
                    serial=certificate.serial,
                    ueid=device.ueid,
                    spiffe_id=certificate.spiffe_id,
                    not_before=aware(certificate.not_before),
                    not_after=aware(certificate.not_after),
                    pem=certificate.pem,
                    issued_at=now,
                    revoked_at=None,
                    nonce=None if nonce is None else nonce.value,
                ),
                audit_seq=entry.seq,
                new_device=new_device,
            )

        return self._db.write(work)

    def _lock_or_create_device(
        self, cursor: Any, device: DeviceRegistration, now: datetime
    ) -> tuple[DeviceRecord, bool]:
        """Lock the device row or create it; ``(record, created)``.

        An active row with the same DeviceID key is refreshed (product, DeviceID certificate,
        ``updated_at``) by the UPDATE that locks it: one statement for a renewal. A new device is
        one ``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL waits for a concurrent insert of the
        same UEID and then does nothing). Anything else (revoked, another key, or inserted by
        another replica meanwhile) is locked as it is and judged by the caller.
        """
        sql = self._sql
        ueid_hex = device.ueid.hex()
        fingerprint_hex = device.device_id_fingerprint.hex()
        t_now = sql.time(now)
        cursor.execute(
            sql.device_refresh,
            (device.product, device.device_id_pem, t_now, ueid_hex, fingerprint_hex),
        )
        refreshed = cursor.fetchone()
        if refreshed is not None:
            record = DeviceRecord(
                ueid=device.ueid,
                product=device.product,
                status=DeviceStatus.ACTIVE,
                device_id_pem=device.device_id_pem,
                device_id_fingerprint=device.device_id_fingerprint,
                created_at=sql.read_time(refreshed[0]),
                updated_at=now,
                revoked_at=None if refreshed[1] is None else sql.read_time(refreshed[1]),
            )
            return record, False
        cursor.execute(
            sql.device_insert,
            (ueid_hex, device.product, device.device_id_pem, fingerprint_hex, t_now, t_now),
        )
        if cursor.rowcount == 1:
            record = DeviceRecord(
                ueid=device.ueid,
                product=device.product,
                status=DeviceStatus.ACTIVE,
                device_id_pem=device.device_id_pem,
                device_id_fingerprint=device.device_id_fingerprint,
                created_at=now,
                updated_at=now,
                revoked_at=None,
            )
            return record, True
        cursor.execute(sql.device_lock, (ueid_hex,))  # FOR UPDATE on PostgreSQL
        existing = cursor.fetchone()
        if existing is None:  # pragma: no cover - rows are never deleted
            raise StoreError(f"device {ueid_hex} vanished while being registered")
        record = DeviceRecord(
            ueid=bytes.fromhex(existing[0]),
            product=existing[1],
            status=DeviceStatus(existing[2]),
            device_id_pem=existing[3],
            device_id_fingerprint=bytes.fromhex(existing[4]),
            created_at=sql.read_time(existing[5]),
            updated_at=sql.read_time(existing[6]),
            revoked_at=None if existing[7] is None else sql.read_time(existing[7]),
        )
        return record, False

    def find_device(self, ueid: bytes) -> DeviceRecord | None:
        check_ueid(ueid)
        d = s.devices
        row = self._db.read(lambda c: c.execute(select(d).where(d.c.ueid == ueid.hex())).first())
        return None if row is None else rec.device_record(row)

    def get_device(self, ueid: bytes) -> DeviceRecord:
        """The device, or :class:`NotFoundError`."""
        found = self.find_device(ueid)
        if found is None:
            raise NotFoundError(f"no device {ueid.hex()} in the registry")
        return found

    def list_devices(
        self, *, status: DeviceStatus | None = None, product: str | None = None
    ) -> list[DeviceRecord]:
        """Devices, oldest registration first, optionally filtered."""
        d = s.devices
        query = select(d).order_by(d.c.created_at, d.c.ueid)
        if status is not None:
            query = query.where(d.c.status == DeviceStatus(status).value)
        if product is not None:
            query = query.where(d.c.product == product)
        return [rec.device_record(r) for r in self._db.read(lambda c: c.execute(query).all())]

    def certificates_of(self, ueid: bytes) -> list[CertificateRecord]:
        """The device's certificates, oldest first."""
        check_ueid(ueid)
        t = s.certificates
        query = select(t).where(t.c.ueid == ueid.hex()).order_by(t.c.issued_at, t.c.serial)
        return [rec.certificate_record(r) for r in self._db.read(lambda c: c.execute(query).all())]

    def get_certificate(self, serial: int) -> CertificateRecord:
        """The certificate with this serial number, or :class:`NotFoundError`."""
        check_serial(serial)
        t = s.certificates
        query = select(t).where(t.c.serial == rec.serial_hex(serial))
        row = self._db.read(lambda c: c.execute(query).first())
        if row is None:
            raise NotFoundError(f"no certificate {rec.serial_hex(serial)} in the registry")
        return rec.certificate_record(row)
