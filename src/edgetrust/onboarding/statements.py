"""The registry's hot statements, as driver SQL: nonces, issuance and the audit append.

Every onboarding runs these: one nonce insert (Challenge), then the nonce consumption, the device
refresh or insert, the certificate insert and the audit append (Attest). Through SQLAlchemy Core
each statement costs ~45 us of Python here (cache key, compiled-parameter processing, result
set-up, events); on the driver's cursor ~15-20 us (measured with the same SQLite file). So they
are written once, by hand, for the columns of :mod:`edgetrust.onboarding.schema`, and run on
:meth:`edgetrust.onboarding.database.Database.cursor` inside the ordinary write transaction.

Placeholders are written ``?`` and turned into ``%s`` for psycopg. Times go in and come out as
SQLAlchemy stores them, so the two paths read each other's rows: SQLite keeps naive UTC text
``YYYY-MM-DD HH:MM:SS.ffffff`` (compared as text, correct because the format is fixed);
PostgreSQL ``timestamptz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["HotStatements", "statements_for"]

_NONCE_INSERT = (
    "INSERT INTO nonces (value, session, device_hint, created_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
_NONCE_CONSUME = (
    "UPDATE nonces SET used_at = ? WHERE value = ? AND used_at IS NULL AND expires_at > ? "
    "AND (session IS NULL OR session = ?)"
)
_NONCE_COLUMNS = "value, session, device_hint, created_at, expires_at, used_at"
_NONCE_STATE = "SELECT used_at, expires_at FROM nonces WHERE value = ?"
_DEVICE_REFRESH = (
    "UPDATE devices SET product = ?, device_id_pem = ?, updated_at = ? "
    "WHERE ueid = ? AND status = 'active' AND device_id_fingerprint = ? "
    "RETURNING created_at, revoked_at"
)
_DEVICE_INSERT = (
    "INSERT INTO devices (ueid, product, status, device_id_pem, device_id_fingerprint, "
    "created_at, updated_at, revoked_at) VALUES (?, ?, 'active', ?, ?, ?, ?, NULL) "
    "ON CONFLICT (ueid) DO NOTHING"
)
_DEVICE_SELECT = (
    "SELECT ueid, product, status, device_id_pem, device_id_fingerprint, created_at, updated_at, "
    "revoked_at FROM devices WHERE ueid = ?"
)
_CERTIFICATE_INSERT = (
    "INSERT INTO certificates (serial, ueid, spiffe_id, not_before, not_after, pem, issued_at, "
    "revoked_at, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)"
)
_AUDIT_LAST = "SELECT seq, digest FROM audit ORDER BY seq DESC LIMIT 1"
_AUDIT_INSERT = (
    "INSERT INTO audit (seq, at, actor, action, subject, detail, digest) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class HotStatements:
    """The hot statements and time conversions of one dialect (``sqlite`` or ``postgresql``)."""

    dialect: str
    nonce_insert: str
    nonce_consume: str
    nonce_consume_returning: str
    nonce_state: str
    device_refresh: str
    device_insert: str
    device_lock: str
    certificate_insert: str
    audit_last: str
    audit_insert: str

    @classmethod
    def of(cls, dialect: str) -> HotStatements:
        pg = dialect == "postgresql"

        def sql(text: str) -> str:
            return text.replace("?", "%s") if pg else text

        return cls(
            dialect=dialect,
            nonce_insert=sql(_NONCE_INSERT),
            nonce_consume=sql(_NONCE_CONSUME),
            nonce_consume_returning=sql(f"{_NONCE_CONSUME} RETURNING {_NONCE_COLUMNS}"),
            nonce_state=sql(_NONCE_STATE),
            device_refresh=sql(_DEVICE_REFRESH),
            device_insert=sql(_DEVICE_INSERT),
            device_lock=sql(_DEVICE_SELECT + (" FOR UPDATE" if pg else "")),
            certificate_insert=sql(_CERTIFICATE_INSERT),
            audit_last=sql(_AUDIT_LAST),
            audit_insert=sql(_AUDIT_INSERT),
        )

    def time(self, when: datetime) -> Any:
        """An aware datetime as the column stores it."""
        if self.dialect == "postgresql":
            return when
        return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def read_time(self, value: Any) -> datetime:
        """A stored time (never NULL here) as an aware UTC datetime."""
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


_BY_DIALECT: dict[str, HotStatements] = {}


def statements_for(dialect: str) -> HotStatements:
    """The (shared) :class:`HotStatements` of ``dialect``."""
    found = _BY_DIALECT.get(dialect)
    if found is None:
        found = _BY_DIALECT[dialect] = HotStatements.of(dialect)
    return found
