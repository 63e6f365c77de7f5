"""record_issuance and the device views (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edgetrust.errors import (
    DeviceConflictError,
    DuplicateRecordError,
    NonceReplayError,
    NonceSessionError,
    NotFoundError,
    RevokedError,
)
from edgetrust.onboarding.records import DeviceStatus, NonceClaim
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW, certificate, device, ueid


def _count(store: SqlRegistryStore) -> tuple[int, int, int]:
    """(devices, certificates, audit entries)."""
    devices = len(store.list_devices())
    certs = sum(len(store.certificates_of(d.ueid)) for d in store.list_devices())
    return devices, certs, len(store.audit_since(0))


def test_first_issuance_registers_the_device(store: SqlRegistryStore) -> None:
    receipt = store.record_issuance(
        device=device(1), certificate=certificate(0x10), actor="verifier-a", now=NOW
    )
    assert receipt.new_device
    assert receipt.device.ueid == ueid(1)
    assert receipt.device.status is DeviceStatus.ACTIVE
    assert receipt.device.created_at == NOW
    assert receipt.certificate.serial == 0x10
    assert receipt.certificate.issued_at == NOW
    assert receipt.certificate.not_after == NOW + timedelta(hours=1)
    assert receipt.certificate.nonce is None
    assert receipt.audit_seq == 1
    shown = store.get_device(ueid(1))
    assert shown == receipt.device
    assert store.get_certificate(0x10) == receipt.certificate


def test_issuance_is_audited_with_its_facts(store: SqlRegistryStore) -> None:
    store.record_issuance(
        device=device(1),
        certificate=certificate(0xABC),
        actor="verifier-a",
        now=NOW,
        detail={"tier": "affirming", "serial": "forged"},
    )
    (entry,) = store.audit_since(0)
    assert entry.action == "certificate.issued"
    assert entry.actor == "verifier-a"
    assert entry.subject == f"device:{ueid(1).hex()}"
    assert entry.detail["tier"] == "affirming"
    assert entry.detail["serial"] == "abc"  # the store's facts win over the caller's detail
    assert entry.detail["new_device"] is True
    assert entry.detail["spiffe_id"].endswith(ueid(1).hex())


def test_renewal_adds_a_certificate_to_the_same_device(store: SqlRegistryStore) -> None:
    store.record_issuance(device=device(1), certificate=certificate(1), actor="v", now=NOW)
    later = NOW + timedelta(minutes=50)
    receipt = store.record_issuance(
        device=device(1, product="edgetrust-sim-v2"),
        certificate=certificate(2, now=later),
        actor="v",
        now=later,
    )
    assert not receipt.new_device
    assert receipt.device.created_at == NOW
    assert receipt.device.updated_at == later
    assert receipt.device.product == "edgetrust-sim-v2"
    assert [c.serial for c in store.certificates_of(ueid(1))] == [1, 2]


def test_revoked_device_gets_nothing_stored(store: SqlRegistryStore) -> None:
    store.record_issuance(device=device(1), certificate=certificate(1), actor="v", now=NOW)
    store.revoke_device(ueid(1), reason="stolen", actor="op", now=NOW)
    before = _count(store)
    with pytest.raises(RevokedError, match="revoked"):
        store.record_issuance(device=device(1), certificate=certificate(2), actor="v", now=NOW)
    assert _count(store) == before
    with pytest.raises(NotFoundError):
        store.get_certificate(2)


def test_another_deviceid_key_for_a_known_ueid_is_a_conflict(store: SqlRegistryStore) -> None:
    store.record_issuance(device=device(1), certificate=certificate(1), actor="v", now=NOW)
    before = _count(store)
    with pytest.raises(DeviceConflictError, match="another DeviceID key"):
        store.record_issuance(
            device=device(1, key=99), certificate=certificate(2), actor="v", now=NOW
        )
    assert _count(store) == before


def test_duplicate_serial_is_refused_and_nothing_stored(store: SqlRegistryStore) -> None:
    store.record_issuance(device=device(1), certificate=certificate(7), actor="v", now=NOW)
    before = _count(store)
    with pytest.raises(DuplicateRecordError, match="serial 7"):
        store.record_issuance(device=device(2), certificate=certificate(7, n=2), actor="v", now=NOW)
    assert _count(store) == before
    assert store.find_device(ueid(2)) is None  # the device registration was rolled back too


def test_nonce_consumed_with_the_issuance(store: SqlRegistryStore) -> None:
    nonce = bytes(range(32))
    store.issue_nonce(value=nonce, session="s1", now=NOW, ttl=timedelta(seconds=60))
    claim = NonceClaim(value=nonce, session="s1")
    receipt = store.record_issuance(
        device=device(1), certificate=certificate(1), actor="v", now=NOW, nonce=claim
    )
    assert receipt.certificate.nonce == nonce
    before = _count(store)
    with pytest.raises(NonceReplayError):
        store.record_issuance(
            device=device(1), certificate=certificate(2), actor="v", now=NOW, nonce=claim
        )
    assert _count(store) == before


def test_nonce_of_another_session_stores_nothing(store: SqlRegistryStore) -> None:
    nonce = bytes(range(32))
    store.issue_nonce(value=nonce, session="s1", now=NOW, ttl=timedelta(seconds=60))
    with pytest.raises(NonceSessionError):
        store.record_issuance(
            device=device(1),
            certificate=certificate(1),
            actor="v",
            now=NOW,
            nonce=NonceClaim(value=nonce, session="s2"),
        )
    assert _count(store) == (0, 0, 0)
    store.consume_nonce(nonce, session="s1", now=NOW)  # still unused


def test_unknown_device_and_certificate_are_not_found(store: SqlRegistryStore) -> None:
    assert store.find_device(ueid(5)) is None
    with pytest.raises(NotFoundError, match=ueid(5).hex()):
        store.get_device(ueid(5))
    with pytest.raises(NotFoundError, match="no certificate 1f"):
        store.get_certificate(0x1F)
    assert store.certificates_of(ueid(5)) == []


def test_list_devices_filters_by_status_and_product(store: SqlRegistryStore) -> None:
    for n in (1, 2, 3):
        product = "cam" if n == 3 else "edgetrust-sim"
        store.record_issuance(
            device=device(n, product=product),
            certificate=certificate(n, n=n),
            actor="v",
            now=NOW + timedelta(seconds=n),
        )
    store.revoke_device(ueid(2), reason="", actor="op", now=NOW)
    assert [d.ueid for d in store.list_devices()] == [ueid(1), ueid(2), ueid(3)]
    assert [d.ueid for d in store.list_devices(status=DeviceStatus.REVOKED)] == [ueid(2)]
    assert [d.ueid for d in store.list_devices(status=DeviceStatus.ACTIVE)] == [ueid(1), ueid(3)]
    assert [d.ueid for d in store.list_devices(product="cam")] == [ueid(3)]


def test_large_serial_round_trips(store: SqlRegistryStore) -> None:
    serial = 2**159 + 12345  # 20-byte serial numbers (RFC 5280 maximum)
    store.record_issuance(device=device(1), certificate=certificate(serial), actor="v", now=NOW)
    assert store.get_certificate(serial).serial == serial
    assert store.get_certificate(serial).serial_hex == format(serial, "x")
