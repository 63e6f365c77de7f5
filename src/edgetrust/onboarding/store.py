"""The device registry: the :class:`RegistryStore` interface and :class:`SqlRegistryStore`.

The verifier calls it to hand out and consume nonces, to record every certificate it issues
(before the certificate leaves), to refuse revoked devices; the CLI to list, show, revoke and
audit; the revocation feed to follow ``revocations_since``. The tables are in
:mod:`edgetrust.onboarding.schema`, the database discipline in :mod:`edgetrust.onboarding.database`.

Concurrency guarantees (SQLite file shared by processes, or PostgreSQL shared by replicas):

* **Nonces are single use**: consumption is one ``UPDATE ... WHERE used_at IS NULL AND
  expires_at > now``; the database's row lock (PostgreSQL re-evaluates the condition after waiting)
  or write lock (SQLite) lets exactly one caller see a row updated.
* **No certificate for a revoked device**: :meth:`record_issuance` and :meth:`revoke_device` both
  lock the device row first, so either the issuance commits before the revocation (and the
  revocation then marks that certificate revoked) or it sees ``revoked`` and stores nothing.
* **No double issuance**: serial numbers are primary keys; a nonce consumed with an issuance is
  stored UNIQUE on its certificate row.
* **Gapless, commit-ordered sequences**: revocation and audit ``seq`` are ``max + 1`` computed
  under a lock held until commit (PostgreSQL: an advisory lock; SQLite: the write lock), so a
  feed reader that has seen ``seq = n`` never later sees a smaller one appear, and the audit hash
  chain is linear.
  Lock order, everywhere: audit -> nonce row -> device row -> certificate rows -> revocations. A
  transaction that will append to the audit log takes the audit lock *first* (PostgreSQL): with
  group commit one transaction carries many writes, and a batch that held the audit lock while
  waiting for a row that another replica's batch held while waiting for the audit lock would
  deadlock. Writes without an audit entry (nonce issue and consumption) take only their row.

Writes go through :meth:`Database.write <edgetrust.onboarding.database.Database.write>` and so
through its group commit; the hot ones (nonces, issuance, audit) run hand-written statements on the
driver's cursor (:mod:`edgetrust.onboarding.statements`). A nonce insert is written with
``durable=False``: see :mod:`edgetrust.onboarding.nonces` for why that is safe.

Time is a parameter (``now``, aware datetimes); the store never reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import URL

from edgetrust.errors import (
    DeviceConflictError,
    DuplicateRecordError,
    InvalidRequestError,
    NonceExpiredError,
    NonceReplayError,
    NonceSessionError,
    NotFoundError,
    RevokedError,
    StoreError,
    UnknownNonceError,
)
from edgetrust.onboarding import ledger
from edgetrust.onboarding import records as rec
from edgetrust.onboarding import schema as s
from edgetrust.onboarding.database import Database
from edgetrust.onboarding.nonces import NonceStore
from edgetrust.onboarding.records import (
    MAX_NAME,
    MAX_NONCE,
    MAX_REASON,
    MIN_NONCE,
    AuditChain,
    AuditEvent,
    AuditRecord,
    CertificateRecord,
    DeviceRecord,
    DeviceRegistration,
    DeviceStatus,
    Endorsement,
    EndorsementRecord,
    IssuanceReceipt,
    NewCertificate,
    NonceClaim,
    NonceRecord,
    RevocationEvent,
    RevocationKind,
    aware,
    check_serial,
    check_text,
    check_ueid,
)
from edgetrust.onboarding.statements import statements_for

_ACTIVE = DeviceStatus.ACTIVE.value
_REVOKED = DeviceStatus.REVOKED.value


class RegistryStore(NonceStore, Protocol):
    """Everything the verifier, the CLI and the revocation feed need from the registry."""

    def record_issuance(
        self,
        *,
        device: DeviceRegistration,
        certificate: NewCertificate,
        actor: str,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        nonce: NonceClaim | None = None,
    ) -> IssuanceReceipt: ...
    def get_device(self, ueid: bytes) -> DeviceRecord: ...
    def find_device(self, ueid: bytes) -> DeviceRecord | None: ...
    def list_devices(
        self, *, status: DeviceStatus | None = None, product: str | None = None
    ) -> list[DeviceRecord]: ...
    def certificates_of(self, ueid: bytes) -> list[CertificateRecord]: ...
    def get_certificate(self, serial: int) -> CertificateRecord: ...
    def revoke_device(
        self, ueid: bytes, *, reason: str, actor: str, now: datetime
    ) -> RevocationEvent: ...
    def revoke_certificate(
        self, serial: int, *, reason: str, actor: str, now: datetime
    ) -> RevocationEvent: ...
    def is_revoked(self, *, ueid: bytes | None = None, serial: int | None = None) -> bool: ...
    def ensure_not_revoked(self, ueid: bytes) -> None: ...
    def revocations_since(self, after_seq: int, *, limit: int = 1000) -> list[RevocationEvent]: ...
    def revocation_head(self) -> int: ...
    def put_endorsement(
        self, endorsement: Endorsement, *, actor: str, now: datetime
    ) -> EndorsementRecord: ...
    def get_endorsement(self, product: str, firmware_version: str) -> EndorsementRecord: ...
    def list_endorsements(self, *, product: str | None = None) -> list[EndorsementRecord]: ...
    def append_audit(self, event: AuditEvent, *, now: datetime) -> AuditRecord: ...
    def audit_since(self, after_seq: int = 0, *, limit: int | None = None) -> list[AuditRecord]: ...
    def verify_audit_chain(self, *, expect_head: ledger.AuditHead | None = None) -> AuditChain: ...


class SqlRegistryStore:
    """:class:`RegistryStore` on SQLite or PostgreSQL. Thread-safe; share one per process.

    ``create=True`` creates the schema when missing (idempotent; safe when replicas start at
    once); ``create=False`` only opens an existing registry and raises
    :class:`~edgetrust.errors.ConfigError` when there is none (what the read-side CLI wants).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        create: bool = True,
        sqlite_synchronous: str = "FULL",
        busy_timeout_ms: int = 10_000,
        pool_size: int = 8,
        echo: bool = False,
    ) -> None:
        self._db = Database(
            url,
            sqlite_synchronous=sqlite_synchronous,
            busy_timeout_ms=busy_timeout_ms,
            pool_size=pool_size,
            echo=echo,
        )
        try:
            self._db.ensure_schema(create=create)
        except BaseException:
            self._db.dispose()
            raise
        self._sql = statements_for(self._db.dialect)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.dialect

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return self._db.url

    @property
    def database(self) -> Database:
        """The underlying database (tests and maintenance; never write behind the API)."""
        return self._db

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> SqlRegistryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ nonces

    def issue_nonce(
        self,
        *,
        value: bytes,
        session: str | None,
        now: datetime,
        ttl: timedelta,
        device_hint: str | None = None,
    ) -> NonceRecord:
        """Store a fresh nonce valid until ``now + ttl`` (a known value: DuplicateRecordError)."""
        if not MIN_NONCE <= len(value) <= MAX_NONCE:
            raise InvalidRequestError(f"a nonce must be {MIN_NONCE}..{MAX_NONCE} bytes")
        if ttl <= timedelta(0):
            raise InvalidRequestError("nonce TTL must be positive")
        if session is not None:
            check_text("session", session, MAX_NAME, allow_empty=True)
        if device_hint is not None:
            check_text("device hint", device_hint, MAX_NAME, allow_empty=True)
        now = aware(now)
        record = NonceRecord(
            value=value,
            session=session,
            device_hint=device_hint,
            created_at=now,
            expires_at=now + ttl,
            used_at=None,
        )
        sql = self._sql
        row = (value.hex(), session, device_hint, sql.time(now), sql.time(record.expires_at))
        # Not durable on its own: a nonce matters only once consumed, by a durable transaction
        # that commits after this one (and so makes it durable too). See onboarding.nonces.
        self._db.write(
            lambda conn: self._db.cursor(conn).execute(sql.nonce_insert, row), durable=False
        )
        return record

    def consume_nonce(self, value: bytes, *, session: str | None, now: datetime) -> NonceRecord:
        """Mark a nonce used, exactly once across all processes sharing the database.

        Raises :class:`UnknownNonceError`, :class:`NonceExpiredError`, :class:`NonceReplayError`
        or :class:`NonceSessionError` (the last leaves the nonce unused). A nonce issued without a
        session may be consumed by any session.
        """
        now = aware(now)
        claim = NonceClaim(value=value, session=session)
        sql = self._sql

        def work(conn: Connection) -> NonceRecord:
            cursor = self._db.cursor(conn)
            _check_nonce_length(claim)
            t = sql.time(now)
            cursor.execute(sql.nonce_consume_returning, (t, claim.value.hex(), t, claim.session))
            used = cursor.fetchone()
            if used is None:
                self._refuse_nonce(cursor, claim, now)
            return NonceRecord(
                value=bytes.fromhex(used[0]),
                session=used[1],
                device_hint=used[2],
                created_at=sql.read_time(used[3]),
                expires_at=sql.read_time(used[4]),
                used_at=sql.read_time(used[5]),
            )

        return self._db.write(work)

    def purge_nonces(self, *, expired_before: datetime) -> int:
        """Delete nonces that expired before ``expired_before``; returns how many."""
        cutoff = aware(expired_before)
        n = s.nonces
        return self._db.write(
            lambda conn: conn.execute(n.delete().where(n.c.expires_at < cutoff)).rowcount
        )

    # ------------------------------------------------------------------ issuance, devices

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
                self._consume(cursor, nonce, now)
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

    def _consume(self, cursor: Any, claim: NonceClaim, now: datetime) -> None:
        """Consume ``claim`` inside the caller's transaction, or raise its NonceError."""
        _check_nonce_length(claim)
        sql = self._sql
        t = sql.time(now)
        cursor.execute(sql.nonce_consume, (t, claim.value.hex(), t, claim.session))
        if cursor.rowcount != 1:
            self._refuse_nonce(cursor, claim, now)

    def _refuse_nonce(self, cursor: Any, claim: NonceClaim, now: datetime) -> NoReturn:
        """Why ``claim`` could not be consumed (the UPDATE matched no row)."""
        sql = self._sql
        cursor.execute(sql.nonce_state, (claim.value.hex(),))
        row = cursor.fetchone()
        if row is None:
            raise UnknownNonceError("unknown nonce")
        if row[0] is not None:
            raise NonceReplayError("nonce already used")
        expires_at = sql.read_time(row[1])
        if expires_at <= now:
            raise NonceExpiredError(f"nonce expired at {expires_at.isoformat()}")
        raise NonceSessionError("nonce was issued to another session")

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

    # ------------------------------------------------------------------ revocation

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
            self._db.serialize(conn, "audit")  # first: see the lock order (module docstring)
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
            self._db.serialize(conn, "audit")  # first: see the lock order (module docstring)
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

    # ------------------------------------------------------------------ endorsements

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
            self._db.serialize(conn, "audit")  # first: see the lock order (module docstring)
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

    # ------------------------------------------------------------------ audit

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


# ---------------------------------------------------------------------- helpers


def _check_nonce_length(claim: NonceClaim) -> None:
    if not MIN_NONCE <= len(claim.value) <= MAX_NONCE:
        raise UnknownNonceError("unknown nonce (wrong length)")


if TYPE_CHECKING:  # mypy proves that the SQL store implements the whole interface

    def _implements(store: SqlRegistryStore) -> RegistryStore:
        return store
