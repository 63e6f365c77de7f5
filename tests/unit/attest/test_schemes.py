"""The evidence scheme registry: media types, detection, decode/verify per scheme."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest import cbor, cose, eat, psa, schemes
from edgetrust.errors import (
    ClaimError,
    FreshnessError,
    MalformedError,
    NonceError,
    UnsupportedSchemeError,
)

from .test_eat import DEVICE_KEY, IAT, NONCE, NOW, device_claims
from .test_psa import IAK, profile1_claims, rfc_claims

DEV = "tag:edgetrust.dev,2026:device-v1"


def test_registry_lists_the_four_schemes() -> None:
    assert sorted(s.name for s in schemes.SCHEMES.values()) == [
        "eat",
        "edgetrust-device-eat",
        "psa",
        "psa-iot-profile-1",
    ]


@pytest.mark.parametrize(
    ("media_type", "name"),
    [
        (f'application/eat+cwt; eat_profile="{DEV}"', "edgetrust-device-eat"),
        (f"application/eat+cwt;eat_profile={DEV}", "edgetrust-device-eat"),
        (f'APPLICATION/EAT+CWT ; EAT_PROFILE="{DEV}"', "edgetrust-device-eat"),
        ("application/eat+cwt", "eat"),
        ("application/psa-attestation-token", "psa"),
        ('application/psa-attestation-token; profile="PSA_IOT_PROFILE_1"', "psa-iot-profile-1"),
    ],
)  # fmt: skip
def test_scheme_for_media_type(media_type: str, name: str) -> None:
    assert schemes.scheme_for(media_type).name == name


@pytest.mark.parametrize(
    "media_type",
    [
        "application/json",
        'application/eat+cwt; eat_profile="urn:other"',
        "application/eat+jwt",
        "application/eat+cwt; eat_profile",
        "not a media type",
    ],
)
def test_unknown_media_type(media_type: str) -> None:
    with pytest.raises(UnsupportedSchemeError):
        schemes.scheme_for(media_type)


def test_quoted_parameter_may_contain_a_semicolon() -> None:
    assert schemes.parse_media_type('a/b; p="x;y"; q=1') == ("a/b", (("p", "x;y"), ("q", "1")))


def test_detection() -> None:
    device = eat.make_eat(device_claims(), DEVICE_KEY)
    generic = eat.make_eat(eat.EatClaims(iss="me", iat=IAT), DEVICE_KEY)
    rfc = psa.make_psa(rfc_claims(), IAK)
    legacy = psa.make_psa(profile1_claims(), IAK)
    assert schemes.detect_scheme(device) is schemes.DEVICE_EAT
    assert schemes.detect_scheme(generic) is schemes.GENERIC_EAT
    assert schemes.detect_scheme(rfc) is schemes.PSA_RFC9783
    assert schemes.detect_scheme(legacy) is schemes.PSA_PROFILE1
    wrapped = cbor.dumps(cbor.Tag(eat.CWT_TAG, cbor.loads(device)))
    assert schemes.detect_scheme(wrapped) is schemes.DEVICE_EAT


@pytest.mark.parametrize(
    "token",
    [
        cbor.dumps(cbor.Tag(998, [b"", {}, b"", b""])),
        cbor.dumps({1: 2}),
        cbor.dumps(cbor.Tag(18, [b"", {}, None, b""])),
        cbor.dumps(cbor.Tag(18, [b"", {}, b"\x01", b""])),
    ],
    ids=["other-tag", "a-map", "detached", "payload-not-claims"],
)
def test_detection_of_non_tokens(token: bytes) -> None:
    with pytest.raises(UnsupportedSchemeError):
        schemes.detect_scheme(token)


def test_verify_token_device() -> None:
    token = eat.make_eat(device_claims(), DEVICE_KEY)
    verified = schemes.verify_token(
        token,
        DEVICE_KEY.public_key(),
        media_type=schemes.DEVICE_EAT_MEDIA_TYPE,
        expected_nonce=NONCE,
        now=NOW,
        max_age=timedelta(minutes=1),
    )
    assert verified.scheme == "edgetrust-device-eat"
    assert verified.profile == eat.DEVICE_PROFILE
    assert verified.typed_claims == device_claims()
    assert verified.claims["eat_nonce"] == NONCE.hex()
    assert isinstance(verified.message, cose.Sign1Message)


def test_verify_token_detects_without_media_type() -> None:
    token = psa.make_psa(rfc_claims(), IAK)
    verified = schemes.verify_token(token, IAK.public_key())
    assert verified.scheme == "psa"
    assert verified.profile == psa.PSA_PROFILE_TFM


def test_device_scheme_enforces_the_profile() -> None:
    token = eat.make_eat(device_claims(hwmodel=None), DEVICE_KEY)
    with pytest.raises(ClaimError, match="hwmodel"):
        schemes.DEVICE_EAT.verify(token, DEVICE_KEY.public_key(), now=NOW)
    # the generic EAT scheme accepts the same token
    schemes.GENERIC_EAT.verify(token, DEVICE_KEY.public_key(), now=NOW)


def test_device_scheme_refuses_mac0() -> None:
    token = eat.make_eat(device_claims(), cose.SymmetricKey(secret=b"k" * 32))
    with pytest.raises(ClaimError, match="signed"):
        schemes.DEVICE_EAT.verify(token, cose.SymmetricKey(secret=b"k" * 32), now=NOW)


def test_nonce_through_the_scheme() -> None:
    token = eat.make_eat(device_claims(), DEVICE_KEY)
    with pytest.raises(NonceError):
        schemes.DEVICE_EAT.verify(
            token, DEVICE_KEY.public_key(), expected_nonce=b"\x00" * 32, now=NOW
        )


def test_psa_scheme_variant_must_match() -> None:
    legacy = psa.make_psa(profile1_claims(), IAK)
    with pytest.raises(ClaimError, match="psa-iot-profile-1"):
        schemes.PSA_RFC9783.verify(legacy, IAK.public_key())
    with pytest.raises(ClaimError):
        schemes.PSA_PROFILE1.decode(psa.make_psa(rfc_claims(), IAK))


def test_psa_refuses_max_age() -> None:
    with pytest.raises(FreshnessError, match="nonce"):
        schemes.PSA_RFC9783.verify(
            psa.make_psa(rfc_claims(), IAK), IAK.public_key(), max_age=timedelta(minutes=1)
        )


def test_decode_does_not_verify() -> None:
    token = eat.make_eat(device_claims(), ec.derive_private_key(3, ec.SECP256R1()))
    decoded = schemes.decode_token(token)
    assert decoded.scheme == "edgetrust-device-eat"
    assert decoded.claims["swname"] == "edgetrust-fw"


def test_decode_with_a_wrong_tag() -> None:
    with pytest.raises(MalformedError):
        schemes.decode_token(
            cbor.dumps(cbor.Tag(998, [b"", {}, b"", b""])), media_type=schemes.EAT_MEDIA_TYPE
        )


def test_verified_at_a_fixed_time() -> None:
    token = eat.make_eat(device_claims(exp=IAT + 10), DEVICE_KEY)
    later = datetime.fromtimestamp(IAT + 10, UTC)
    with pytest.raises(FreshnessError):
        schemes.verify_token(token, DEVICE_KEY.public_key(), now=later)
