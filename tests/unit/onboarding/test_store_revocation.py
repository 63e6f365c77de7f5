"""Revocation: devices and certificates, the feed (seq), idempotence (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edgetrust.errors import InvalidRequestError, NotFoundError, OversizeError, RevokedError
from edgetrust.onboarding.records import DeviceStatus, RevocationKind
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW, certificate, device, ueid

LATER = NOW + timedelta(minutes=5)


@pytest.fixture
def fleet(store: SqlRegistryStore) -> SqlRegistryStore:
    """Devices 1..3 with certificates 0x11, 0x12 (device 1) and 0x21 (2), 0x31 (3)."""
    store.record_issuance(device=device(1), certificate=certificate(0x11), actor="v", now=NOW)
    store.record_issuance(device=device(1), certificate=certificate(0x12), actor="v", now=NOW)
    store.record_issuance(device=device(2), certificate=certificate(0x21, n=2), actor="v", now=NOW)
    store.record_issuance(device=device(3), certificate=certificate(0x31, n=3), actor="v", now=NOW)
    return store


def test_revoke_device_revokes_it_and_its_certificates(fleet: SqlRegistryStore) -> None:
    event = fleet.revoke_device(ueid(1), reason="stolen", actor="op", now=LATER)
    assert event.seq == 1
    assert event.kind is RevocationKind.DEVICE
    assert event.ueid == ueid(1)
    assert event.serial is None
    assert event.reason == "stolen"
    assert event.revoked_at == LATER
    shown = fleet.get_device(ueid(1))
    assert shown.status is DeviceStatus.REVOKED
    assert shown.revoked_at == LATER
    assert all(c.revoked_at == LATER for c in fleet.certificates_of(ueid(1)))
    assert fleet.certificates_of(ueid(2))[0].revoked_at is None
    audit = fleet.audit_since(0)[-1]
    assert audit.action == "device.revoked"
    assert audit.actor == "op"
    assert audit.detail == {"certificates": 2, "reason": "stolen", "revocation_seq": 1}


def test_revoke_device_is_idempotent(fleet: SqlRegistryStore) -> None:
    first = fleet.revoke_device(ueid(1), reason="stolen", actor="op", now=LATER)
    audit_len = len(fleet.audit_since(0))
    again = fleet.revoke_device(ueid(1), reason="again", actor="op", now=LATER + timedelta(1))
    assert again == first
    assert fleet.revocation_head() == 1
    assert len(fleet.audit_since(0)) == audit_len


def test_revoke_unknown_device_is_not_found(fleet: SqlRegistryStore) -> None:
    with pytest.raises(NotFoundError, match=ueid(9).hex()):
        fleet.revoke_device(ueid(9), reason="", actor="op", now=LATER)
    assert fleet.revocation_head() == 0


def test_revoke_certificate(fleet: SqlRegistryStore) -> None:
    event = fleet.revoke_certificate(0x12, reason="key leaked", actor="op", now=LATER)
    assert event.kind is RevocationKind.CERTIFICATE
    assert event.serial == 0x12
    assert event.serial_hex == "12"
    assert event.ueid == ueid(1)
    assert fleet.get_certificate(0x12).revoked_at == LATER
    assert fleet.get_certificate(0x11).revoked_at is None
    assert fleet.get_device(ueid(1)).status is DeviceStatus.ACTIVE
    assert fleet.audit_since(0)[-1].subject == "certificate:12"
    assert fleet.revoke_certificate(0x12, reason="x", actor="op", now=LATER) == event


def test_revoking_a_certificate_of_a_revoked_device_returns_the_device_event(
    fleet: SqlRegistryStore,
) -> None:
    device_event = fleet.revoke_device(ueid(1), reason="stolen", actor="op", now=LATER)
    assert fleet.revoke_certificate(0x11, reason="x", actor="op", now=LATER) == device_event


def test_revoke_unknown_certificate_is_not_found(fleet: SqlRegistryStore) -> None:
    with pytest.raises(NotFoundError, match="no certificate ff"):
        fleet.revoke_certificate(0xFF, reason="", actor="op", now=LATER)


def test_is_revoked(fleet: SqlRegistryStore) -> None:
    fleet.revoke_device(ueid(2), reason="", actor="op", now=LATER)
    fleet.revoke_certificate(0x12, reason="", actor="op", now=LATER)
    assert fleet.is_revoked(ueid=ueid(2))
    assert not fleet.is_revoked(ueid=ueid(1))
    assert fleet.is_revoked(serial=0x12)
    assert fleet.is_revoked(serial=0x21)  # through its device
    assert not fleet.is_revoked(serial=0x11)
    assert not fleet.is_revoked(ueid=ueid(9))  # unknown is not revoked
    assert not fleet.is_revoked(serial=0x99)
    with pytest.raises(InvalidRequestError, match="needs a ueid or a serial"):
        fleet.is_revoked()


def test_ensure_not_revoked(fleet: SqlRegistryStore) -> None:
    fleet.ensure_not_revoked(ueid(1))
    fleet.revoke_device(ueid(1), reason="", actor="op", now=LATER)
    with pytest.raises(RevokedError, match=f"device {ueid(1).hex()} is revoked"):
        fleet.ensure_not_revoked(ueid(1))


def test_feed_is_ordered_gapless_and_pageable(fleet: SqlRegistryStore) -> None:
    fleet.revoke_certificate(0x11, reason="a", actor="op", now=LATER)
    fleet.revoke_device(ueid(2), reason="b", actor="op", now=LATER)
    fleet.revoke_certificate(0x31, reason="c", actor="op", now=LATER)
    events = fleet.revocations_since(0)
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.reason for e in events] == ["a", "b", "c"]
    assert [e.seq for e in fleet.revocations_since(1)] == [2, 3]
    assert [e.seq for e in fleet.revocations_since(0, limit=2)] == [1, 2]
    assert fleet.revocations_since(3) == []
    assert fleet.revocation_head() == 3
    with pytest.raises(InvalidRequestError):
        fleet.revocations_since(-1)


def test_revocation_inputs_are_bounded(fleet: SqlRegistryStore) -> None:
    with pytest.raises(OversizeError, match="reason"):
        fleet.revoke_device(ueid(1), reason="r" * 1025, actor="op", now=LATER)
    with pytest.raises(InvalidRequestError, match="actor must not be empty"):
        fleet.revoke_device(ueid(1), reason="", actor="", now=LATER)
    with pytest.raises(InvalidRequestError, match="UEID"):
        fleet.revoke_device(b"", reason="", actor="op", now=LATER)
    with pytest.raises(InvalidRequestError, match="serial"):
        fleet.revoke_certificate(0, reason="", actor="op", now=LATER)
    assert fleet.revocation_head() == 0
