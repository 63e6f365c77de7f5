"""The nonce rows of the registry: issue, consume exactly once, purge.

Part of :class:`~edgetrust.onboarding.store.SqlRegistryStore` (see that module for the
concurrency guarantees and the lock order). The nonce *sessions* built on top are in
:mod:`edgetrust.onboarding.nonces`, which also explains why a nonce insert is written with
``durable=False``. :func:`consume_claim` is shared with the issuance transaction
(:mod:`edgetrust.onboarding.registry_devices`), which consumes its nonce in the same commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import Connection

from edgetrust.errors import (
    InvalidRequestError,
    NonceExpiredError,
    NonceReplayError,
    NonceSessionError,
    UnknownNonceError,
)
from edgetrust.onboarding import schema as s
from edgetrust.onboarding.database import Database
from edgetrust.onboarding.records import (
    MAX_NAME,
    MAX_NONCE,
    MIN_NONCE,
    NonceClaim,
    NonceRecord,
    aware,
    check_text,
)
from edgetrust.onboarding.statements import HotStatements

__all__ = ["SqlNonces", "check_nonce_length", "consume_claim", "refuse_claim"]


class SqlNonces:
    """The nonce methods of :class:`~edgetrust.onboarding.store.SqlRegistryStore` (a mixin)."""

    _db: Database
    _sql: HotStatements

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
            check_nonce_length(claim)
            t = sql.time(now)
            cursor.execute(sql.nonce_consume_returning, (t, claim.value.hex(), t, claim.session))
            used = cursor.fetchone()
            if used is None:
                refuse_claim(cursor, sql, claim, now)
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


def consume_claim(cursor: Any, sql: HotStatements, claim: NonceClaim, now: datetime) -> None:
    """Consume ``claim`` inside the caller's transaction, or raise its NonceError."""
    check_nonce_length(claim)
    t = sql.time(now)
    cursor.execute(sql.nonce_consume, (t, claim.value.hex(), t, claim.session))
    if cursor.rowcount != 1:
        refuse_claim(cursor, sql, claim, now)


def refuse_claim(cursor: Any, sql: HotStatements, claim: NonceClaim, now: datetime) -> NoReturn:
    """Why ``claim`` could not be consumed (the UPDATE matched no row)."""
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


def check_nonce_length(claim: NonceClaim) -> None:
    if not MIN_NONCE <= len(claim.value) <= MAX_NONCE:
        raise UnknownNonceError("unknown nonce (wrong length)")
