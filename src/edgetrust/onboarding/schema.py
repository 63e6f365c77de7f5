"""The registry's SQL schema: tables, column types and the append-only triggers.

The typed records read from these tables are in :mod:`edgetrust.onboarding.records`.

Tables (SQLAlchemy Core, one :data:`metadata`; identical on SQLite and PostgreSQL):

``devices``        one row per onboarded device (UEID hex primary key), its DeviceID certificate
                   and key fingerprint, status ``active`` / ``revoked``.
``endorsements``   reference values per product and firmware version (JSON text, the format of
                   :mod:`edgetrust.attest.reference`) with the manufacturer's trust anchors (PEM).
``nonces``         single-use challenge nonces with their session, expiry and use time.
``certificates``   every operational certificate issued (serial hex primary key), its SPIFFE ID,
                   validity, PEM, the nonce it answered (unique) and its revocation time.
``revocations``    the append-only revocation feed; ``seq`` is gapless and strictly increasing.
``audit``          the append-only audit log; ``seq`` is gapless and every entry carries
                   ``digest = SHA-256(previous digest || canonical entry)`` (a hash chain).
``schema_meta``    the schema version (:data:`SCHEMA_VERSION`).

Append-only tables are guarded by triggers on both databases, so that even SQL typed by hand cannot
rewrite history: UPDATE and DELETE (and TRUNCATE on PostgreSQL) raise.

Identifiers are stored as lower-case hex text (UEIDs, nonces, serial numbers without leading zeros,
as in ``edgetrust.v1.RevocationEvent``); times as UTC (``timestamptz`` on PostgreSQL, ISO text with
microseconds on SQLite, compared correctly as text because the format is fixed).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

#: Bumped on every incompatible change; a store refuses a database with a newer version.
SCHEMA_VERSION = 1


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; SQLite gets naive UTC text, PostgreSQL ``timestamptz``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to the registry (use an aware UTC datetime)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

schema_meta = Table(
    "schema_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("ueid", String(128), primary_key=True),
    Column("product", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("device_id_pem", Text, nullable=False),
    Column("device_id_fingerprint", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('active', 'revoked')", name="devices_status"),
    Index("devices_product", "product"),
)

endorsements = Table(
    "endorsements",
    metadata,
    Column("product", String(256), primary_key=True),
    Column("firmware_version", String(128), primary_key=True),
    Column("document", Text, nullable=False),
    Column("trust_anchors_pem", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

nonces = Table(
    "nonces",
    metadata,
    Column("value", String(128), primary_key=True),
    Column("session", String(256), nullable=True),
    Column("device_hint", String(256), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Index("nonces_expires_at", "expires_at"),
)

certificates = Table(
    "certificates",
    metadata,
    Column("serial", String(42), primary_key=True),
    Column("ueid", String(128), ForeignKey("devices.ueid"), nullable=False),
    Column("spiffe_id", String(512), nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("pem", Text, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("nonce", String(128), nullable=True, unique=True),
    Index("certificates_ueid", "ueid"),
)

revocations = Table(
    "revocations",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("ueid", String(128), nullable=False),
    Column("serial", String(42), nullable=True),
    Column("reason", Text, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    CheckConstraint("kind IN ('device', 'certificate')", name="revocations_kind"),
    Index("revocations_ueid", "ueid"),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("detail", Text, nullable=False),
    Column("digest", String(64), nullable=False),
)

#: Tables that only ever grow; guarded by triggers.
APPEND_ONLY = ("revocations", "audit")

_PG_APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION edgetrust_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'edgetrust: table % is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$
"""


def append_only_ddl(dialect_name: str) -> list[str]:
    """Idempotent DDL that makes :data:`APPEND_ONLY` tables refuse UPDATE/DELETE (and TRUNCATE)."""
    statements: list[str] = []
    if dialect_name == "postgresql":
        statements.append(_PG_APPEND_ONLY_FUNCTION)
        for table in APPEND_ONLY:
            statements += [
                f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION edgetrust_append_only()",
                f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION edgetrust_append_only()",
            ]
    else:
        for table in APPEND_ONLY:
            for op in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'edgetrust: table {table} is append-only "
                    f"({op} refused)'); END"
                )
    return statements
