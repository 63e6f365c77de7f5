"""EAR attestation results: trust tiers, vectors, JSON claims and the signed JWT form."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest.ear import (
    DEVICE_SUBMOD,
    EAR_PROFILE,
    Appraisal,
    AttestationResult,
    Category,
    Claim,
    Tier,
    TrustVector,
    b64url_decode,
    b64url_encode,
    sign_ear,
    verify_ear,
    verify_jws,
)
from edgetrust.errors import (
    AlgorithmError,
    ClaimError,
    ExpiredError,
    MalformedError,
    OversizeError,
    SignatureError,
)
from tests.unit.attest.ear_samples import AFFIRMING_VECTOR, NOW, sample_result

KEY = ec.generate_private_key(ec.SECP256R1())
_result = sample_result


def _b64json(data: object) -> str:
    return b64url_encode(json.dumps(data).encode())


# ---- tiers and vectors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        (0, Tier.NONE),
        (1, Tier.NONE),
        (-1, Tier.NONE),
        (2, Tier.AFFIRMING),
        (31, Tier.AFFIRMING),
        (-2, Tier.AFFIRMING),
        (-32, Tier.AFFIRMING),
        (32, Tier.WARNING),
        (95, Tier.WARNING),
        (-33, Tier.WARNING),
        (-96, Tier.WARNING),
        (96, Tier.CONTRAINDICATED),
        (127, Tier.CONTRAINDICATED),
        (-97, Tier.CONTRAINDICATED),
        (-128, Tier.CONTRAINDICATED),
    ],
)
def test_tier_bands(value: int, tier: Tier) -> None:
    assert Tier.of(value) is tier


@pytest.mark.parametrize("value", [128, -129])
def test_trust_claim_out_of_range(value: int) -> None:
    with pytest.raises(ClaimError, match=r"outside -128\.\.127"):
        TrustVector(hardware=value)


def test_vector_tier_is_worst_and_with_claim_keeps_worst() -> None:
    vector = AFFIRMING_VECTOR.with_claim(Category.EXECUTABLES, Claim.UNRECOGNIZED_RUNTIME)
    assert vector.tier is Tier.WARNING
    vector = vector.with_claim(Category.EXECUTABLES, Claim.CONTRAINDICATED_RUNTIME)
    assert vector.executables == 96
    assert vector.with_claim(Category.EXECUTABLES, Claim.APPROVED_RUNTIME).executables == 96
    assert vector.tier is Tier.CONTRAINDICATED
    assert TrustVector().tier is Tier.NONE
    assert Claim.STALE_EVIDENCE < 0
    assert Tier.of(Claim.STALE_EVIDENCE) is Tier.CONTRAINDICATED
    assert Tier.of(Claim.PROFILE_VIOLATION) is Tier.CONTRAINDICATED
    assert Category.SOURCED_DATA.key == 7


def test_status_better_than_vector_rejected() -> None:
    with pytest.raises(ClaimError, match="better than the trust vector"):
        Appraisal(status=Tier.AFFIRMING, trust_vector=TrustVector(executables=96))


def test_status_worse_than_vector_allowed() -> None:
    appraisal = Appraisal(status=Tier.CONTRAINDICATED, trust_vector=AFFIRMING_VECTOR)
    assert appraisal.status is Tier.CONTRAINDICATED


# ---- claims set -------------------------------------------------------------------------------


def test_claims_layout() -> None:
    claims = _result().to_claims()
    assert claims["eat_profile"] == "tag:github.com,2023:veraison/ear"
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["ear.verifier-id"] == {"developer": "edgetrust", "build": "0.1.0"}
    assert b64url_decode(claims["eat_nonce"]) == b"\x07" * 32
    device = claims["submods"]["device"]
    assert device["ear.status"] == "affirming"
    assert device["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "hardware": 2,
    }
    assert device["ear.appraisal-policy-id"] == "edgetrust/default"
    ours = device["edgetrust.appraisal"]
    assert set(ours) == {"reasons", "ueid", "product", "firmware-version", "device-key"}


def test_claims_round_trip_keeps_unknown_claims() -> None:
    claims = _result().to_claims()
    claims["x-top"] = {"a": 1}
    claims["submods"]["device"]["x-sub"] = {"b": 2}
    parsed = AttestationResult.from_claims(claims)
    assert parsed.extensions == {"x-top": {"a": 1}}
    assert parsed.device.extensions == {"x-sub": {"b": 2}}
    assert parsed.to_claims() == claims


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(eat_profile="other"), "eat_profile"),
        (lambda c: c.pop("iat"), "iat claim missing"),
        (lambda c: c.update(iat=1.5), "iat must be an integer"),
        (lambda c: c.update(submods={}), "submods must be a non-empty"),
        (lambda c: c.pop("ear.verifier-id"), "ear.verifier-id"),
        (lambda c: c["submods"]["device"].update({"ear.status": "great"}), "unknown trust tier"),
        (lambda c: c["submods"]["device"].pop("ear.status"), "ear.status missing"),
        (
            lambda c: c["submods"]["device"].update({"ear.trustworthiness-vector": {"cpu": 2}}),
            "unknown category",
        ),
        (
            lambda c: c["submods"]["device"].update(
                {"ear.trustworthiness-vector": {"hardware": "2"}}
            ),
            "expected an integer",
        ),
        (
            lambda c: c["submods"]["device"]["edgetrust.appraisal"].update(reasons="x"),
            "reasons must be a list",
        ),
    ],
)
def test_claims_rejections(mutate: object, message: str) -> None:
    claims = _result().to_claims()
    mutate(claims)  # type: ignore[operator]
    with pytest.raises(ClaimError, match=message):
        AttestationResult.from_claims(claims)


def test_result_properties() -> None:
    result = _result()
    assert result.affirming
    assert result.status is Tier.AFFIRMING
    assert result.product == "edgetrust-sim"
    assert result.trust_vector == AFFIRMING_VECTOR
    bad = Appraisal(
        status=Tier.CONTRAINDICATED,
        trust_vector=TrustVector(executables=96),
        reasons=("measurement_mismatch:firmware",),
    )
    mixed = _result(submods={DEVICE_SUBMOD: result.device, "other": bad})
    assert mixed.status is Tier.CONTRAINDICATED
    assert not mixed.affirming
    assert mixed.reasons == ("measurement_mismatch:firmware",)


# ---- signed JWT -------------------------------------------------------------------------------


def test_sign_verify_round_trip() -> None:
    result = _result(expires_at=NOW + dt.timedelta(hours=1), raw_evidence=b"evidence")
    token = sign_ear(result, KEY, kid="verifier-1")
    header = json.loads(b64url_decode(token.split(".")[0]))
    assert header == {"alg": "ES256", "typ": "JWT", "kid": "verifier-1"}
    verified = verify_ear(token, KEY.public_key(), now=NOW)
    assert verified == result
    assert verified.device_key is not None
    assert verified.profile == EAR_PROFILE


def test_sign_verify_es384() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    result = _result()
    token = sign_ear(result, key)
    assert json.loads(b64url_decode(token.split(".")[0]))["alg"] == "ES384"
    assert verify_ear(token.encode(), key.public_key()) == result


def test_tampered_payload_rejected() -> None:
    token = sign_ear(_result(), KEY)
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["submods"]["device"]["ear.status"] = "affirming"
    claims["submods"]["device"]["ear.trustworthiness-vector"]["executables"] = 2
    claims["iat"] += 1
    forged = f"{header}.{_b64json(claims)}.{signature}"
    with pytest.raises(SignatureError):
        verify_ear(forged, KEY.public_key())


def test_tampered_signature_rejected() -> None:
    token = sign_ear(_result(), KEY)
    header, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[5] ^= 1
    with pytest.raises(SignatureError):
        verify_ear(f"{header}.{payload}.{b64url_encode(bytes(raw))}", KEY.public_key())


def test_wrong_key_rejected() -> None:
    token = sign_ear(_result(), KEY)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError):
        verify_ear(token, other)


def test_alg_none_rejected() -> None:
    token = sign_ear(_result(), KEY)
    _, payload, _ = token.split(".")
    with pytest.raises(AlgorithmError, match="does not match"):
        verify_ear(f"{_b64json({'alg': 'none'})}.{payload}.", KEY.public_key())


def test_alg_key_mismatch_rejected() -> None:
    token = sign_ear(_result(), KEY)
    _, payload, signature = token.split(".")
    with pytest.raises(AlgorithmError, match="'ES384' does not match"):
        verify_ear(f"{_b64json({'alg': 'ES384'})}.{payload}.{signature}", KEY.public_key())


def test_missing_alg_rejected() -> None:
    token = sign_ear(_result(), KEY)
    _, payload, signature = token.split(".")
    with pytest.raises(AlgorithmError, match="no alg"):
        verify_ear(f"{_b64json({'typ': 'JWT'})}.{payload}.{signature}", KEY.public_key())


def test_crit_header_rejected() -> None:
    header = _b64json({"alg": "ES256", "crit": ["exp"], "exp": 1})
    with pytest.raises(AlgorithmError, match="critical"):
        verify_ear(f"{header}.{_b64json({})}.AAAA", KEY.public_key())


def test_duplicate_header_member_rejected() -> None:
    header = b64url_encode(b'{"alg":"ES256","alg":"none"}')
    with pytest.raises(MalformedError, match="duplicate JSON member 'alg'"):
        verify_ear(f"{header}.e30.AAAA", KEY.public_key())


def test_expired_ear_rejected() -> None:
    token = sign_ear(_result(expires_at=NOW + dt.timedelta(minutes=5)), KEY)
    verify_ear(token, KEY.public_key(), now=NOW)
    with pytest.raises(ExpiredError):
        verify_ear(token, KEY.public_key(), now=NOW + dt.timedelta(minutes=5))


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!!.e30.AAAA", "e30=.e30.AAAA"])
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(MalformedError):
        verify_ear(token, KEY.public_key())


def test_oversize_rejected() -> None:
    with pytest.raises(OversizeError):
        verify_ear("a" * (64 * 1024 + 1), KEY.public_key())


def test_rsa_or_ed25519_signing_key_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    with pytest.raises(AlgorithmError):
        sign_ear(_result(), ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    with pytest.raises(AlgorithmError):
        verify_ear("x.y.z", ed25519.Ed25519PrivateKey.generate().public_key())  # type: ignore[arg-type]


def test_b64url_strict() -> None:
    assert b64url_decode("AQID") == b"\x01\x02\x03"
    for bad in ("AQI=", "AQ+D", "A", "AR"):  # padding, wrong alphabet, bad length, spare bits
        with pytest.raises(MalformedError):
            b64url_decode(bad)


# RFC 7515 Appendix A.3 (JWS using ECDSA P-256 SHA-256): key and compact serialisation.
RFC7515_A3_X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
RFC7515_A3_Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
RFC7515_A3_JWS = (
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)


def test_rfc7515_a3_vector_verifies() -> None:
    x = int.from_bytes(base64.urlsafe_b64decode(RFC7515_A3_X + "="), "big")
    y = int.from_bytes(base64.urlsafe_b64decode(RFC7515_A3_Y + "="), "big")
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    header, payload = verify_jws(RFC7515_A3_JWS, public)
    assert header == {"alg": "ES256"}
    assert json.loads(payload)["iss"] == "joe"
    head, body, signature = RFC7515_A3_JWS.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    with pytest.raises(SignatureError):
        verify_jws(f"{head}.{body}.{flipped}", public)
