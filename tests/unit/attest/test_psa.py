"""PSA tokens: both variants made and verified, mandatory claims, wrong types, properties."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrust.attest import cbor, cose, psa
from edgetrust.errors import ClaimError, EvidenceError, NonceError, SignatureError

IAK = ec.derive_private_key(0x1A4, ec.SECP256R1())
HMAC_IAK = cose.SymmetricKey(secret=b"\x5a" * 32)
COMPONENT = psa.SoftwareComponent(
    measurement_type="BL", measurement_value=b"\x11" * 32, version="1.0", signer_id=b"\x22" * 32
)


def rfc_claims(**changes: Any) -> psa.PsaClaims:
    claims = psa.PsaClaims(
        variant=psa.PsaVariant.RFC9783,
        profile=psa.PSA_PROFILE_TFM,
        nonce=b"\x01" * 32,
        instance_id=b"\x01" + b"\x02" * 32,
        implementation_id=b"\x03" * 32,
        client_id=-1,
        security_lifecycle=0x3000,
        boot_seed=b"\x04" * 16,
        certification_reference="1234567890123-12345",
        software_components=(COMPONENT,),
        verification_service_indicator="https://verifier.example",
    )
    return dataclasses.replace(claims, **changes)


def profile1_claims(**changes: Any) -> psa.PsaClaims:
    claims = psa.PsaClaims(
        variant=psa.PsaVariant.PROFILE1,
        profile=psa.PSA_IOT_PROFILE_1,
        nonce=b"\x01" * 32,
        instance_id=b"\x01" + b"\x02" * 32,
        implementation_id=b"\x03" * 32,
        client_id=1,
        security_lifecycle=0x3000,
        boot_seed=b"\x04" * 32,
        hardware_version="1234567890123",
        software_components=(COMPONENT,),
    )
    return dataclasses.replace(claims, **changes)


@pytest.mark.parametrize("make", [rfc_claims, profile1_claims], ids=["rfc9783", "profile1"])
@pytest.mark.parametrize("key", [IAK, HMAC_IAK], ids=["sign1", "mac0"])
def test_round_trip(make: Any, key: cose.SigningKey) -> None:
    claims = make()
    token = psa.make_psa(claims, key)
    verifier = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    assert psa.verify_psa(token, verifier, expected_nonce=b"\x01" * 32) == claims


def test_lifecycle_names() -> None:
    assert rfc_claims(security_lifecycle=0x3000).lifecycle_state == "secured"
    assert rfc_claims(security_lifecycle=0x5001).lifecycle_state == "recoverable-psa-rot-debug"


def test_json_names() -> None:
    named = rfc_claims().to_json()
    assert named["psa-client-id"] == -1
    assert named["eat_profile"] == psa.PSA_PROFILE_TFM
    assert named["psa-software-components"][0]["measurement-type"] == "BL"
    assert named["psa-security-lifecycle-state"] == "secured"


def test_wrong_key() -> None:
    token = psa.make_psa(rfc_claims(), IAK)
    with pytest.raises(SignatureError):
        psa.verify_psa(token, ec.derive_private_key(7, ec.SECP256R1()).public_key())


def test_nonce_mismatch() -> None:
    with pytest.raises(NonceError):
        psa.verify_psa(psa.make_psa(rfc_claims(), IAK), IAK, expected_nonce=b"\x09" * 32)


@pytest.mark.parametrize(
    "missing",
    [
        psa.PsaClaim.NONCE,
        psa.PsaClaim.INSTANCE_ID,
        psa.PsaClaim.PROFILE,
        psa.PsaClaim.IMPLEMENTATION_ID,
        psa.PsaClaim.CLIENT_ID,
        psa.PsaClaim.SECURITY_LIFECYCLE,
        psa.PsaClaim.SOFTWARE_COMPONENTS,
    ],
)
def test_rfc9783_mandatory_claims(missing: psa.PsaClaim) -> None:
    payload = psa.encode_psa_claims(rfc_claims())
    del payload[int(missing)]
    with pytest.raises(ClaimError, match="lacks mandatory"):
        psa.decode_psa_claims(payload)


@pytest.mark.parametrize(
    "missing",
    [
        psa.PsaProfile1Claim.NONCE,
        psa.PsaProfile1Claim.INSTANCE_ID,
        psa.PsaProfile1Claim.IMPLEMENTATION_ID,
        psa.PsaProfile1Claim.CLIENT_ID,
        psa.PsaProfile1Claim.SECURITY_LIFECYCLE,
        psa.PsaProfile1Claim.BOOT_SEED,
    ],
)
def test_profile1_mandatory_claims(missing: psa.PsaProfile1Claim) -> None:
    payload = psa.encode_psa_claims(profile1_claims())
    del payload[int(missing)]
    with pytest.raises(ClaimError, match="lacks mandatory"):
        psa.decode_psa_claims(payload)


def test_profile1_components_xor_no_measurements() -> None:
    payload = psa.encode_psa_claims(profile1_claims())
    payload[psa.PsaProfile1Claim.NO_SW_MEASUREMENTS] = 1
    with pytest.raises(ClaimError, match="exactly one"):
        psa.decode_psa_claims(payload)
    del payload[psa.PsaProfile1Claim.SOFTWARE_COMPONENTS]
    assert psa.decode_psa_claims(payload).no_sw_measurements == 1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (psa.PsaClaim.NONCE, b"\x01" * 16, "nonce"),
        (psa.PsaClaim.INSTANCE_ID, b"\x02" * 33, "RAND UEID"),
        (psa.PsaClaim.INSTANCE_ID, b"\x01" * 32, "instance ID"),
        (psa.PsaClaim.PROFILE, b"tag:psacertified.org", "profile must be text"),
        (psa.PsaClaim.IMPLEMENTATION_ID, b"\x03" * 31, "implementation ID"),
        (psa.PsaClaim.CLIENT_ID, 2**31, "32-bit"),
        (psa.PsaClaim.CLIENT_ID, True, "32-bit"),
        (psa.PsaClaim.SECURITY_LIFECYCLE, 0x7000, "not a defined state"),
        (psa.PsaClaim.SECURITY_LIFECYCLE, -1, "16-bit"),
        (psa.PsaClaim.BOOT_SEED, b"\x04" * 7, "boot seed"),
        (psa.PsaClaim.CERTIFICATION_REFERENCE, "12345", "certification reference"),
        (psa.PsaClaim.SOFTWARE_COMPONENTS, [], "non-empty"),
        (psa.PsaClaim.SOFTWARE_COMPONENTS, [{5: b"\x22" * 32}], "measurement value"),
        (psa.PsaClaim.SOFTWARE_COMPONENTS, [{2: b"\x11" * 32}], "signer ID"),
        (psa.PsaClaim.SOFTWARE_COMPONENTS, [{2: b"\x11" * 20, 5: b"\x22" * 32}], "20 bytes"),
        (psa.PsaClaim.SOFTWARE_COMPONENTS, [{2: b"\x11" * 32, 5: b"\x22" * 32, 1: 7}], "type"),
        (psa.PsaClaim.VERIFICATION_SERVICE_INDICATOR, b"url", "verification service"),
    ],
)
def test_wrong_types(key: int, value: object, message: str) -> None:
    payload = psa.encode_psa_claims(rfc_claims())
    payload[int(key)] = value
    with pytest.raises(ClaimError, match=message):
        psa.decode_psa_claims(payload)


def test_both_boot_seeds() -> None:
    payload = psa.encode_psa_claims(rfc_claims())
    payload[psa.PsaClaim.LEGACY_BOOT_SEED] = b"\x04" * 32
    with pytest.raises(ClaimError, match="both"):
        psa.decode_psa_claims(payload)


def test_profile1_hardware_version_format() -> None:
    payload = psa.encode_psa_claims(profile1_claims())
    payload[psa.PsaProfile1Claim.HARDWARE_VERSION] = "12-34"
    with pytest.raises(ClaimError, match="hardware version"):
        psa.decode_psa_claims(payload)


def test_unknown_claims_are_kept() -> None:
    payload = psa.encode_psa_claims(rfc_claims())
    payload[-80000] = "vendor"
    claims = psa.decode_psa_claims(payload)
    assert claims.extra == {-80000: "vendor"}
    assert psa.decode_psa_claims(psa.encode_psa_claims(claims)) == claims


def test_signer_id_is_optional_in_profile1() -> None:
    component = psa.SoftwareComponent(measurement_value=b"\x11" * 48)
    claims = profile1_claims(software_components=(component,))
    assert psa.decode_psa_claims(psa.encode_psa_claims(claims)) == claims


# --- properties ---------------------------------------------------------------------------------

VALUES = (
    st.none() | st.booleans() | st.integers(-(2**33), 2**33) | st.binary(max_size=70)
    | st.text(max_size=20)
    | st.lists(st.dictionaries(st.integers(0, 7), st.binary(max_size=64) | st.text(max_size=4),
                               max_size=4), max_size=3)
)  # fmt: skip
KEYS = st.sampled_from([*map(int, psa.PsaClaim), *map(int, psa.PsaProfile1Claim), 3, "x"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=12), st.booleans())
def test_random_claims_raise_only_evidence_errors(changes: dict[Any, Any], profile1: bool) -> None:
    base = psa.encode_psa_claims(profile1_claims() if profile1 else rfc_claims())
    with contextlib.suppress(EvidenceError):
        psa.decode_psa_claims({**base, **changes})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_tokens_raise_only_evidence_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        psa.verify_psa(data, IAK.public_key())


TOKEN = psa.make_psa(rfc_claims(), IAK)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_token_never_verifies(data: st.DataObject) -> None:
    mutated = bytearray(TOKEN)
    index = data.draw(st.integers(0, len(mutated) - 1))
    mutated[index] ^= data.draw(st.integers(1, 255))
    try:
        claims = psa.verify_psa(bytes(mutated), IAK.public_key())
    except EvidenceError:
        return
    assert claims == rfc_claims()  # only unsigned bytes changed
    assert cbor.loads(bytes(mutated)).value[2] == cbor.loads(TOKEN).value[2]
