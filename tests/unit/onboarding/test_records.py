"""Registry inputs check themselves: every refusal has a named case."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from edgetrust.errors import InvalidRequestError, OversizeError
from edgetrust.onboarding.records import (
    AuditEvent,
    DeviceRegistration,
    Endorsement,
    NewCertificate,
    NonceClaim,
    RevocationEvent,
    RevocationKind,
    aware,
)
from tests.unit.onboarding.registry_data import NOW, PEM, certificate, device


def test_valid_inputs_build() -> None:
    assert device(1).ueid.hex().startswith("01")
    assert certificate(1).serial == 1


@pytest.mark.parametrize("ueid", [b"", b"\x01" * 65])
def test_device_ueid_length(ueid: bytes) -> None:
    with pytest.raises(InvalidRequestError, match="UEID"):
        DeviceRegistration(
            ueid=ueid, product="p", device_id_pem=PEM, device_id_fingerprint=bytes(32)
        )


def test_device_fingerprint_must_be_sha256() -> None:
    with pytest.raises(InvalidRequestError, match="32-byte"):
        DeviceRegistration(ueid=b"\x01", product="p", device_id_pem=PEM, device_id_fingerprint=b"x")


def test_device_pem_must_be_pem() -> None:
    with pytest.raises(InvalidRequestError, match="not PEM"):
        DeviceRegistration(
            ueid=b"\x01", product="p", device_id_pem="MIIB", device_id_fingerprint=bytes(32)
        )


def test_device_pem_is_bounded() -> None:
    with pytest.raises(OversizeError, match="DeviceID certificate"):
        DeviceRegistration(
            ueid=b"\x01", product="p", device_id_pem=PEM * 5000, device_id_fingerprint=bytes(32)
        )


@pytest.mark.parametrize(
    ("product", "error"),
    [("", InvalidRequestError), ("p" * 257, OversizeError), ("a\x00b", InvalidRequestError)],
)
def test_device_product(product: str, error: type[Exception]) -> None:
    with pytest.raises(error, match="product"):
        DeviceRegistration(
            ueid=b"\x01", product=product, device_id_pem=PEM, device_id_fingerprint=bytes(32)
        )


@pytest.mark.parametrize("serial", [0, -1, 2**160, True])
def test_certificate_serial_range(serial: int) -> None:
    with pytest.raises(InvalidRequestError, match="serial"):
        certificate(serial)


def test_certificate_validity_order() -> None:
    with pytest.raises(InvalidRequestError, match="not_after must be after not_before"):
        NewCertificate(serial=1, spiffe_id="spiffe://d/x", not_before=NOW, not_after=NOW, pem=PEM)


def test_certificate_naive_times() -> None:
    with pytest.raises(InvalidRequestError, match="timezone-aware"):
        NewCertificate(
            serial=1,
            spiffe_id="spiffe://d/x",
            not_before=NOW.replace(tzinfo=None),
            not_after=NOW.replace(tzinfo=None) + timedelta(1),
            pem=PEM,
        )


def test_certificate_spiffe_id_bounded() -> None:
    with pytest.raises(OversizeError, match="SPIFFE ID"):
        NewCertificate(
            serial=1, spiffe_id="s" * 513, not_before=NOW, not_after=NOW + timedelta(1), pem=PEM
        )


def test_nonce_claim_types() -> None:
    with pytest.raises(InvalidRequestError, match="bytes"):
        NonceClaim(value="00" * 16, session=None)  # type: ignore[arg-type]
    with pytest.raises(OversizeError, match="session"):
        NonceClaim(value=bytes(32), session="s" * 257)


def test_endorsement_document_must_be_a_json_object() -> None:
    with pytest.raises(InvalidRequestError, match="not JSON"):
        Endorsement(product="p", firmware_version="1", document="{")
    with pytest.raises(InvalidRequestError, match="JSON object"):
        Endorsement(product="p", firmware_version="1", document="[]")
    with pytest.raises(InvalidRequestError, match="trust anchors is not PEM"):
        Endorsement(product="p", firmware_version="1", document="{}", trust_anchors_pem="x")


@pytest.mark.parametrize("action", ["", "has space", "ünïcode", "a" * 65])
def test_audit_action_charset(action: str) -> None:
    with pytest.raises((InvalidRequestError, OversizeError), match="audit action"):
        AuditEvent(actor="a", action=action, subject="s", detail={})


def test_audit_detail_must_be_a_mapping() -> None:
    with pytest.raises(InvalidRequestError, match="mapping"):
        AuditEvent(actor="a", action="a.b", subject="s", detail=[1, 2])  # type: ignore[arg-type]


def test_aware_converts_to_utc() -> None:
    plus2 = NOW.astimezone(timezone(timedelta(hours=2)))
    assert aware(plus2) == NOW
    assert aware(plus2).utcoffset() == timedelta(0)


def test_revocation_event_hex_views() -> None:
    event = RevocationEvent(
        seq=1,
        kind=RevocationKind.CERTIFICATE,
        ueid=b"\x01\xab",
        serial=0x0ABC,
        reason="",
        actor="op",
        revoked_at=NOW,
    )
    assert event.ueid_hex == "01ab"
    assert event.serial_hex == "abc"
