"""Nonces in the registry store: single use, TTL, session binding, purge (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edgetrust.errors import (
    DuplicateRecordError,
    InvalidRequestError,
    NonceExpiredError,
    NonceReplayError,
    NonceSessionError,
    OversizeError,
    UnknownNonceError,
)
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW

TTL = timedelta(seconds=60)
N1 = bytes(range(32))
LATER = NOW + timedelta(seconds=5)


def test_issue_then_consume_once(store: SqlRegistryStore) -> None:
    issued = store.issue_nonce(value=N1, session="s1", now=NOW, ttl=TTL, device_hint="01ab")
    assert issued.expires_at == NOW + TTL
    assert issued.used_at is None
    used = store.consume_nonce(N1, session="s1", now=LATER)
    assert used.value == N1
    assert used.session == "s1"
    assert used.device_hint == "01ab"
    assert used.created_at == NOW
    assert used.used_at == LATER


def test_replayed_nonce_is_refused(store: SqlRegistryStore) -> None:
    store.issue_nonce(value=N1, session="s1", now=NOW, ttl=TTL)
    store.consume_nonce(N1, session="s1", now=LATER)
    with pytest.raises(NonceReplayError, match="already used"):
        store.consume_nonce(N1, session="s1", now=LATER)


def test_unknown_nonce_is_refused(store: SqlRegistryStore) -> None:
    with pytest.raises(UnknownNonceError, match="unknown nonce"):
        store.consume_nonce(N1, session="s1", now=NOW)


@pytest.mark.parametrize("size", [0, 7, 65])
def test_nonce_of_impossible_length_is_unknown(store: SqlRegistryStore, size: int) -> None:
    with pytest.raises(UnknownNonceError, match="wrong length"):
        store.consume_nonce(b"\x00" * size, session="s1", now=NOW)


def test_expired_nonce_is_refused(store: SqlRegistryStore) -> None:
    store.issue_nonce(value=N1, session="s1", now=NOW, ttl=TTL)
    with pytest.raises(NonceExpiredError, match="expired"):
        store.consume_nonce(N1, session="s1", now=NOW + TTL)  # expiry instant is already too late


def test_nonce_is_valid_until_just_before_expiry(store: SqlRegistryStore) -> None:
    store.issue_nonce(value=N1, session="s1", now=NOW, ttl=TTL)
    store.consume_nonce(N1, session="s1", now=NOW + TTL - timedelta(microseconds=1))


def test_nonce_from_another_session_is_refused_and_not_burnt(store: SqlRegistryStore) -> None:
    store.issue_nonce(value=N1, session="s1", now=NOW, ttl=TTL)
    with pytest.raises(NonceSessionError, match="another session"):
        store.consume_nonce(N1, session="s2", now=LATER)
    with pytest.raises(NonceSessionError):
        store.consume_nonce(N1, session=None, now=LATER)
    assert store.consume_nonce(N1, session="s1", now=LATER).used_at == LATER


def test_nonce_without_session_is_consumable_by_any_session(store: SqlRegistryStore) -> None:
    store.issue_nonce(value=N1, session=None, now=NOW, ttl=TTL)
    assert store.consume_nonce(N1, session="whatever", now=LATER).session is None


def test_replay_is_reported_before_expiry(store: SqlRegistryStore) -> None:
    store.issue_nonce(value=N1, session="s1", now=NOW, ttl=TTL)
    store.consume_nonce(N1, session="s1", now=LATER)
    with pytest.raises(NonceReplayError):
        store.consume_nonce(N1, session="s1", now=NOW + 2 * TTL)


def test_duplicate_nonce_value_is_refused(store: SqlRegistryStore) -> None:
    store.issue_nonce(value=N1, session="s1", now=NOW, ttl=TTL)
    with pytest.raises(DuplicateRecordError):
        store.issue_nonce(value=N1, session="s2", now=NOW, ttl=TTL)


@pytest.mark.parametrize("size", [0, 7, 65])
def test_issue_refuses_bad_nonce_length(store: SqlRegistryStore, size: int) -> None:
    with pytest.raises(InvalidRequestError, match=r"8\.\.64 bytes"):
        store.issue_nonce(value=b"\x00" * size, session=None, now=NOW, ttl=TTL)


def test_issue_refuses_non_positive_ttl(store: SqlRegistryStore) -> None:
    with pytest.raises(InvalidRequestError, match="TTL"):
        store.issue_nonce(value=N1, session=None, now=NOW, ttl=timedelta(0))


def test_issue_refuses_oversized_session_and_hint(store: SqlRegistryStore) -> None:
    with pytest.raises(OversizeError, match="session"):
        store.issue_nonce(value=N1, session="s" * 257, now=NOW, ttl=TTL)
    with pytest.raises(OversizeError, match="device hint"):
        store.issue_nonce(value=N1, session=None, now=NOW, ttl=TTL, device_hint="h" * 257)


def test_naive_time_is_refused(store: SqlRegistryStore) -> None:
    with pytest.raises(InvalidRequestError, match="timezone-aware"):
        store.issue_nonce(value=N1, session=None, now=NOW.replace(tzinfo=None), ttl=TTL)
    with pytest.raises(InvalidRequestError, match="timezone-aware"):
        store.consume_nonce(N1, session=None, now=NOW.replace(tzinfo=None))


def test_purge_deletes_only_expired(store: SqlRegistryStore) -> None:
    store.issue_nonce(value=b"\x01" * 32, session=None, now=NOW, ttl=timedelta(seconds=10))
    store.issue_nonce(value=b"\x02" * 32, session=None, now=NOW, ttl=timedelta(seconds=100))
    assert store.purge_nonces(expired_before=NOW + timedelta(seconds=50)) == 1
    with pytest.raises(UnknownNonceError):
        store.consume_nonce(b"\x01" * 32, session=None, now=NOW)
    store.consume_nonce(b"\x02" * 32, session=None, now=NOW)
