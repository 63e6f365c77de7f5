"""Nonce sessions: the verifier's Challenge step (RFC 9334 freshness by nonce).

A device asks for a challenge; the verifier draws ``nonce_size`` random bytes (32 by default) and a
random session id, stores them in the registry with a short time to live, and hands both out. The
device puts the nonce into its EAT (``eat_nonce``) and echoes the session id with its evidence;
:meth:`NonceSessions.redeem` then consumes the nonce exactly once, atomically in the store, so that
two verifier replicas sharing one PostgreSQL can never accept the same nonce twice.

Refusals are distinct :class:`~edgetrust.errors.NonceError` subclasses:

* :class:`~edgetrust.errors.UnknownNonceError` -- never issued (or purged after it expired);
* :class:`~edgetrust.errors.NonceExpiredError` -- its TTL has passed;
* :class:`~edgetrust.errors.NonceReplayError` -- already used once;
* :class:`~edgetrust.errors.NonceSessionError` -- issued to another session. This refusal does
  *not* burn the nonce: a party that saw a nonce on the wire cannot spoil it for its session.

**Durability.** Issuing a nonce is a write that does *not* wait for the disk
(``Database.write(durable=False)``: no fsync for SQLite FULL, ``synchronous_commit = off`` for
PostgreSQL), while consuming one -- with the issuance it admits, or as the burn after a refusal --
is a durable write. This is safe because a nonce only has to exist until it is consumed:

* both databases replay their log as a prefix after a crash, and the consuming transaction commits
  after the issuing one, so when a consumption (and the certificate it admitted) is durable, the
  nonce's insert is too. Nothing durable can refer to a lost nonce;
* what a power cut (or an operating-system or PostgreSQL-server crash) can lose is nonces that were
  handed out but not yet consumed. Their devices then get ``nonce_unknown`` -- a refusal, the
  safe direction -- and ask for a new challenge; a verifier restarting after such a crash has
  dropped those devices' connections anyway. A crash of the verifier process alone (SIGKILL)
  loses nothing: the commit is in the operating system's cache (SQLite WAL) or in the server;
* single use is untouched: it is decided by the consuming ``UPDATE ... WHERE used_at IS NULL``
  (row lock, or SQLite's write lock) in a durable transaction. A lost *insert* can only make a
  nonce unknown, never usable twice, and a nonce value is 32 random bytes, never issued again.

Under load the nonce inserts share group commits with issuances anyway; alone, the Challenge call
no longer waits for a disk flush (1-5 ms here).

Expired nonces are deleted ``retention`` after their expiry (opportunistically, at most once per
``purge_interval`` of the ``now`` values seen), which keeps the table as small as the traffic of a
few minutes. Time is always a parameter.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from edgetrust.errors import InvalidRequestError, OversizeError
from edgetrust.onboarding.records import MAX_NONCE, MIN_NONCE, NonceRecord

#: Default nonce length (bytes); RFC 9711 allows 8..64 for ``eat_nonce``.
DEFAULT_NONCE_SIZE = 32
MIN_NONCE_SIZE = MIN_NONCE
MAX_NONCE_SIZE = MAX_NONCE
DEFAULT_TTL = timedelta(seconds=60)
MAX_HINT_LENGTH = 256
MAX_SESSION_LENGTH = 256


class NonceStore(Protocol):
    """The part of the registry that nonce sessions need (implemented by the SQL store)."""

    def issue_nonce(
        self,
        *,
        value: bytes,
        session: str | None,
        now: datetime,
        ttl: timedelta,
        device_hint: str | None = None,
    ) -> NonceRecord: ...

    def consume_nonce(self, value: bytes, *, session: str | None, now: datetime) -> NonceRecord: ...

    def purge_nonces(self, *, expired_before: datetime) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """What the verifier answers to a Challenge request."""

    nonce: bytes
    session_id: str
    expires_at: datetime


class NonceSessions:
    """Issue and redeem single-use nonces bound to a session, through a :class:`NonceStore`."""

    def __init__(
        self,
        store: NonceStore,
        *,
        ttl: timedelta = DEFAULT_TTL,
        nonce_size: int = DEFAULT_NONCE_SIZE,
        retention: timedelta = timedelta(minutes=5),
        purge_interval: timedelta = timedelta(seconds=60),
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if not MIN_NONCE_SIZE <= nonce_size <= MAX_NONCE_SIZE:
            raise InvalidRequestError(
                f"nonce size must be {MIN_NONCE_SIZE}..{MAX_NONCE_SIZE} bytes, not {nonce_size}"
            )
        if ttl <= timedelta(0):
            raise InvalidRequestError("nonce TTL must be positive")
        self._store = store
        self._ttl = ttl
        self._size = nonce_size
        self._retention = retention
        self._purge_interval = purge_interval
        self._random = random_bytes
        self._lock = threading.Lock()
        self._last_purge: datetime | None = None

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    def challenge(self, *, now: datetime, device_hint: str | None = None) -> Challenge:
        """A fresh nonce and session id, stored with ``expires_at = now + ttl``."""
        if device_hint is not None:
            _check_text("device hint", device_hint, MAX_HINT_LENGTH)
            device_hint = device_hint or None
        nonce = self._random(self._size)
        if len(nonce) != self._size:
            raise InvalidRequestError("the random source returned the wrong number of bytes")
        session_id = secrets.token_urlsafe(18)
        record = self._store.issue_nonce(
            value=nonce, session=session_id, now=now, ttl=self._ttl, device_hint=device_hint
        )
        self._maybe_purge(now)
        return Challenge(nonce=nonce, session_id=session_id, expires_at=record.expires_at)

    def redeem(self, nonce: bytes, *, session_id: str, now: datetime) -> NonceRecord:
        """Consume ``nonce`` for ``session_id`` once, or raise a NonceError subclass."""
        _check_text("session id", session_id, MAX_SESSION_LENGTH)
        return self._store.consume_nonce(nonce, session=session_id, now=now)

    def purge(self, now: datetime) -> int:
        """Delete nonces that expired more than ``retention`` before ``now``."""
        return self._store.purge_nonces(expired_before=now - self._retention)

    def _maybe_purge(self, now: datetime) -> None:
        with self._lock:
            last = self._last_purge
            if last is not None and last <= now < last + self._purge_interval:
                return
            self._last_purge = now
        self.purge(now)


def _check_text(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise OversizeError(f"{what} is longer than {limit} characters")
    if not value.isprintable():
        raise InvalidRequestError(f"{what} contains non-printable characters")
