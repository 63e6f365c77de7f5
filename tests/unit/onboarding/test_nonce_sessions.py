"""NonceSessions: the Challenge step on top of a NonceStore (a fake, and the real store)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from edgetrust.errors import (
    InvalidRequestError,
    NonceExpiredError,
    NonceReplayError,
    NonceSessionError,
    OversizeError,
)
from edgetrust.onboarding.nonces import NonceSessions
from edgetrust.onboarding.records import NonceRecord
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW


class FakeNonceStore:
    """Implements the NonceStore protocol in memory; counts purges."""

    def __init__(self) -> None:
        self.issued: list[NonceRecord] = []
        self.purges: list[datetime] = []

    def issue_nonce(
        self,
        *,
        value: bytes,
        session: str | None,
        now: datetime,
        ttl: timedelta,
        device_hint: str | None = None,
    ) -> NonceRecord:
        record = NonceRecord(
            value=value,
            session=session,
            device_hint=device_hint,
            created_at=now,
            expires_at=now + ttl,
            used_at=None,
        )
        self.issued.append(record)
        return record

    def consume_nonce(self, value: bytes, *, session: str | None, now: datetime) -> NonceRecord:
        raise NotImplementedError

    def purge_nonces(self, *, expired_before: datetime) -> int:
        self.purges.append(expired_before)
        return 0


def test_challenge_issues_random_nonce_and_session() -> None:
    fake = FakeNonceStore()
    sessions = NonceSessions(fake, ttl=timedelta(seconds=30))
    a = sessions.challenge(now=NOW, device_hint="01ab")
    b = sessions.challenge(now=NOW)
    assert len(a.nonce) == 32
    assert a.nonce != b.nonce
    assert a.session_id != b.session_id
    assert len(a.session_id) >= 24
    assert a.expires_at == NOW + timedelta(seconds=30)
    assert fake.issued[0].device_hint == "01ab"
    assert fake.issued[0].session == a.session_id
    assert fake.issued[1].device_hint is None


def test_empty_hint_is_stored_as_none() -> None:
    fake = FakeNonceStore()
    NonceSessions(fake).challenge(now=NOW, device_hint="")
    assert fake.issued[0].device_hint is None


def test_oversized_or_unprintable_hint_is_refused() -> None:
    sessions = NonceSessions(FakeNonceStore())
    with pytest.raises(OversizeError, match="device hint"):
        sessions.challenge(now=NOW, device_hint="h" * 257)
    with pytest.raises(InvalidRequestError, match="non-printable"):
        sessions.challenge(now=NOW, device_hint="a\nb")


@pytest.mark.parametrize("size", [7, 65])
def test_nonce_size_bounds(size: int) -> None:
    with pytest.raises(InvalidRequestError, match="nonce size"):
        NonceSessions(FakeNonceStore(), nonce_size=size)


def test_ttl_must_be_positive() -> None:
    with pytest.raises(InvalidRequestError, match="TTL"):
        NonceSessions(FakeNonceStore(), ttl=timedelta(0))


def test_short_random_source_is_refused() -> None:
    sessions = NonceSessions(FakeNonceStore(), random_bytes=lambda n: b"\x00" * (n - 1))
    with pytest.raises(InvalidRequestError, match="wrong number of bytes"):
        sessions.challenge(now=NOW)


def test_purge_runs_at_most_once_per_interval() -> None:
    fake = FakeNonceStore()
    sessions = NonceSessions(
        fake, retention=timedelta(minutes=5), purge_interval=timedelta(seconds=60)
    )
    for seconds in (0, 10, 59, 60, 61, 200):
        sessions.challenge(now=NOW + timedelta(seconds=seconds))
    assert fake.purges == [
        NOW - timedelta(minutes=5),
        NOW + timedelta(seconds=60) - timedelta(minutes=5),
        NOW + timedelta(seconds=200) - timedelta(minutes=5),
    ]


def test_clock_going_backwards_purges_again() -> None:
    fake = FakeNonceStore()
    sessions = NonceSessions(fake)
    sessions.challenge(now=NOW)
    sessions.challenge(now=NOW - timedelta(hours=1))
    assert len(fake.purges) == 2


def test_redeem_against_the_real_store(store: SqlRegistryStore) -> None:
    sessions = NonceSessions(store, ttl=timedelta(seconds=60))
    challenge = sessions.challenge(now=NOW, device_hint="01ab")
    record = sessions.redeem(challenge.nonce, session_id=challenge.session_id, now=NOW)
    assert record.used_at == NOW
    with pytest.raises(NonceReplayError):
        sessions.redeem(challenge.nonce, session_id=challenge.session_id, now=NOW)
    other = sessions.challenge(now=NOW)
    with pytest.raises(NonceSessionError):
        sessions.redeem(other.nonce, session_id=challenge.session_id, now=NOW)
    with pytest.raises(NonceExpiredError):
        sessions.redeem(other.nonce, session_id=other.session_id, now=NOW + timedelta(minutes=1))


def test_redeem_refuses_oversized_session_id(store: SqlRegistryStore) -> None:
    with pytest.raises(OversizeError, match="session id"):
        NonceSessions(store).redeem(bytes(32), session_id="s" * 257, now=NOW)
