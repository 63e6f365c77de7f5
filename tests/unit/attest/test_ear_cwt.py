"""EAR as a CWT: CBOR claim keys of draft-fv-rats-ear section 3.4, COSE_Sign1, strict decoding."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from edgetrust.attest import cbor, cose
from edgetrust.attest.ear import (
    DEVICE_SUBMOD,
    EAR_CWT_MEDIA_TYPE,
    EAR_PROFILE,
    Appraisal,
    AttestationResult,
    Tier,
    TrustVector,
    VerifierId,
    b64url_decode,
    from_cwt_claims,
    sign_ear,
    sign_ear_cwt,
    to_cwt_claims,
    verify_ear,
    verify_ear_cwt,
)
from edgetrust.attest.ear_cwt import EXTENSION_KEY, CwtKey
from edgetrust.errors import (
    AlgorithmError,
    CBORError,
    ClaimError,
    ExpiredError,
    MalformedError,
    OversizeError,
    SignatureError,
)
from tests.unit.attest.ear_samples import NOW, sample_result

P256 = ec.derive_private_key(0xE1, ec.SECP256R1())
P384 = ec.derive_private_key(0xE2, ec.SECP384R1())
ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x42" * 32)
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
DEVICE_KEY = ec.derive_private_key(0xE3, ec.SECP256R1()).public_key()


def _result(**changes: Any) -> AttestationResult:
    fields: dict[str, Any] = {
        "device_key": DEVICE_KEY,
        "expires_at": NOW + dt.timedelta(hours=1),
        "raw_evidence": b"\xd2\x84evidence",
    }
    return sample_result(**(fields | changes))


def _edit(claims: dict[Any, Any], changes: dict[str, Any]) -> None:
    """Set (or, for ``_DROP``, delete) claims by CwtKey name or ``extension``."""
    for name, value in changes.items():
        key = EXTENSION_KEY if name == "extension" else int(CwtKey[name.upper()])
        if value is _DROP:
            del claims[key]
        else:
            claims[key] = value


def _claims(**top: Any) -> dict[Any, Any]:
    claims: dict[Any, Any] = to_cwt_claims(_result())
    _edit(claims, top)
    return claims


def _appraisal_claims(**fields: Any) -> dict[Any, Any]:
    claims = _claims()
    _edit(claims[CwtKey.SUBMODS][DEVICE_SUBMOD], fields)
    return claims


def _ours(**fields: Any) -> dict[Any, Any]:
    keys = {"reasons": 0, "ueid": 1, "product": 2, "firmware_version": 3, "device_key": 4}
    return _appraisal_claims(extension={keys[name]: value for name, value in fields.items()})


_DROP = object()


def _signed(claims: Any, key: cose.PrivateKey = P256, **options: Any) -> bytes:
    return cose.sign1(cbor.dumps(claims), key, **options)


# ---- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg"),
    [(P256, cose.Algorithm.ES256), (P384, cose.Algorithm.ES384), (ED25519, cose.Algorithm.EdDSA)],
    ids=["ES256", "ES384", "EdDSA"],
)
def test_round_trip(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, alg: int) -> None:
    result = _result()
    token = sign_ear_cwt(result, key, kid="verifier-1")
    msg = cose.decode_sign1(token, require_tag=True)
    assert msg.alg is alg
    assert cose.HeaderLabel.ALG in msg.protected
    assert msg.kid == b"verifier-1"
    assert verify_ear_cwt(token, key.public_key(), now=NOW) == result


def test_round_trip_minimal_result_and_unknown_claims_kept() -> None:
    appraisal = Appraisal(
        status=Tier.WARNING,
        trust_vector=TrustVector(configuration=32),
        extensions={-80001: {"x": 1}, "vendor.note": "kept"},
    )
    result = AttestationResult(
        submods={"a": appraisal, "b": Appraisal(status=Tier.NONE, trust_vector=TrustVector())},
        verifier_id=VerifierId(developer="d", build="b"),
        issued_at=NOW,
        extensions={-80000: {"k": b"v"}, "vendor.claim": {"n": 1}},
    )
    token = sign_ear_cwt(result, ED25519)
    assert verify_ear_cwt(token, ED25519.public_key()) == result
    assert verify_ear_cwt(bytearray(token), ED25519.public_key()) == result


def test_payload_uses_the_draft_claim_keys() -> None:
    payload = cose.decode_sign1(sign_ear_cwt(_result(), P256)).payload
    assert payload is not None
    claims = cbor.loads(payload)
    assert claims[265] == "tag:github.com,2023:veraison/ear"
    assert claims[6] == 1_748_779_200
    assert claims[4] == 1_748_779_200 + 3600
    assert claims[10] == b"\x07" * 32
    assert claims[1002] == b"\xd2\x84evidence"
    assert claims[1004] == {0: "edgetrust", 1: "0.1.0"}
    appraisal = claims[266][DEVICE_SUBMOD]
    assert appraisal[1000] == 2
    assert appraisal[1001] == {0: 2, 1: 2, 2: 2, 4: 2}
    assert appraisal[1003] == "edgetrust/default"
    assert set(appraisal[-75000]) == {0, 1, 2, 3, 4}
    media_type = EAR_CWT_MEDIA_TYPE
    assert media_type == 'application/eat+cwt; eat_profile="tag:github.com,2023:veraison/ear"'


def test_draft_cbor_example_decodes_like_its_json_example() -> None:
    # draft-fv-rats-ear section 3.4.1 (Figure 8) against section 3.3.1 (Figure 6)
    cbor_claims = {
        265: "tag:github.com,2023:veraison/ear",
        6: 1666529184,
        1004: {0: "https://veraison-project.org", 1: "vts 0.0.1"},
        1002: bytes.fromhex("6C696665626F61746D616E"),
        266: {
            "PSA": {
                1000: 96,
                1001: {0: 2, 2: 96, 4: 2},
                1003: "https://veraison.example/policy/1/60a0068d",
            }
        },
    }
    json_claims = {
        "eat_profile": "tag:github.com,2023:veraison/ear",
        "iat": 1666529184,
        "ear.verifier-id": {"developer": "https://veraison-project.org", "build": "vts 0.0.1"},
        "ear.raw-evidence": "bGlmZWJvYXRtYW4",
        "submods": {
            "PSA": {
                "ear.status": "contraindicated",
                "ear.trustworthiness-vector": {
                    "instance-identity": 2,
                    "executables": 96,
                    "hardware": 2,
                },
                "ear.appraisal-policy-id": "https://veraison.example/policy/1/60a0068d",
            }
        },
    }
    from_cbor = from_cwt_claims(cbor_claims)
    assert from_cbor == AttestationResult.from_claims(json_claims)
    assert from_cbor.status is Tier.CONTRAINDICATED
    token = _signed(cbor_claims, tagged=True)
    assert (
        verify_ear_cwt(cbor.dumps(cbor.Tag(61, cbor.loads(token))), P256.public_key()) == from_cbor
    )


# ---- JWT and CWT of the same result -----------------------------------------------------------


def test_jwt_and_cwt_of_the_same_result_carry_the_same_claims() -> None:
    result = _result()
    jwt_result = verify_ear(sign_ear(result, P256), P256.public_key())
    cwt_result = verify_ear_cwt(sign_ear_cwt(result, P256), P256.public_key())
    assert jwt_result == cwt_result == result
    json_claims = result.to_claims()
    cbor_claims = to_cwt_claims(result)
    assert cbor_claims[265] == json_claims["eat_profile"]
    assert cbor_claims[6] == json_claims["iat"]
    assert cbor_claims[4] == json_claims["exp"]
    assert cbor_claims[10] == b64url_decode(json_claims["eat_nonce"])
    assert cbor_claims[1002] == b64url_decode(json_claims["ear.raw-evidence"])
    verifier = json_claims["ear.verifier-id"]
    assert cbor_claims[1004] == {0: verifier["developer"], 1: verifier["build"]}
    json_device = json_claims["submods"][DEVICE_SUBMOD]
    cbor_device = cbor_claims[266][DEVICE_SUBMOD]
    assert Tier(cbor_device[1000]).label == json_device["ear.status"]
    names = [
        "instance-identity", "configuration", "executables", "file-system",
        "hardware", "runtime-opaque", "storage-opaque", "sourced-data",
    ]  # fmt: skip
    vector = {names[key]: value for key, value in cbor_device[1001].items()}
    assert vector == json_device["ear.trustworthiness-vector"]
    assert cbor_device[1003] == json_device["ear.appraisal-policy-id"]
    ours_json, ours_cbor = json_device["edgetrust.appraisal"], cbor_device[-75000]
    assert ours_cbor[0] == ours_json["reasons"]
    assert ours_cbor[1] == b64url_decode(ours_json["ueid"])
    assert ours_cbor[2] == ours_json["product"]
    assert ours_cbor[3] == ours_json["firmware-version"]
    assert ours_cbor[4] == b64url_decode(ours_json["device-key"])
    assert len(cbor_claims) == len(json_claims)
    assert len(cbor_device) == len(json_device)


def test_integer_keyed_extension_has_no_json_form() -> None:
    result = _result(extensions={-80000: {}})
    with pytest.raises(ClaimError, match="no JSON name"):
        sign_ear(result, P256)


# ---- COSE layer: signature, key, algorithm ----------------------------------------------------


def test_tampered_signature_is_refused() -> None:
    value = cbor.loads(sign_ear_cwt(_result(), P256))
    protected, unprotected, payload, signature = value.value
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    token = cbor.dumps(cbor.Tag(18, [protected, dict(unprotected), payload, forged]))
    with pytest.raises(SignatureError, match="ES256 signature does not verify"):
        verify_ear_cwt(token, P256.public_key())


def test_tampered_payload_is_refused() -> None:
    value = cbor.loads(sign_ear_cwt(_result(), P256))
    protected, unprotected, payload, signature = value.value
    claims = cbor.loads(payload)
    claims[266][DEVICE_SUBMOD][1000] = 2
    claims[266][DEVICE_SUBMOD][1001] = {0: 2}
    token = cbor.dumps(cbor.Tag(18, [protected, dict(unprotected), cbor.dumps(claims), signature]))
    with pytest.raises(SignatureError):
        verify_ear_cwt(token, P256.public_key())


def test_wrong_key_is_refused() -> None:
    other = ec.derive_private_key(0xD1FF, ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError, match="does not verify"):
        verify_ear_cwt(sign_ear_cwt(_result(), P256), other)


@pytest.mark.parametrize(
    ("signer", "verifier", "message"),
    [
        (P256, P384.public_key(), "ES256 needs an EC key on secp256r1, got secp384r1"),
        (P256, ED25519.public_key(), "ES256 needs an EC key on secp256r1, got an Ed25519 key"),
        (ED25519, P256.public_key(), "EdDSA needs an Ed25519 or Ed448 key, got an EC key"),
    ],
    ids=["P-384-for-ES256", "Ed25519-for-ES256", "P-256-for-EdDSA"],
)
def test_algorithm_is_bound_to_the_key(signer: Any, verifier: Any, message: str) -> None:
    with pytest.raises(AlgorithmError, match=message):
        verify_ear_cwt(sign_ear_cwt(_result(), signer), verifier)


def test_alg_outside_the_protected_header_is_refused() -> None:
    value = cbor.loads(sign_ear_cwt(_result(), P256))
    _, _, payload, signature = value.value
    token = cbor.dumps(cbor.Tag(18, [b"", {1: -7}, payload, signature]))
    with pytest.raises(AlgorithmError, match="alg must be in the protected header"):
        verify_ear_cwt(token, P256.public_key())


def test_es512_is_refused() -> None:
    token = _signed(_claims(), ec.derive_private_key(0xE4, ec.SECP521R1()))
    with pytest.raises(AlgorithmError, match="ES512 is not ES256, ES384 or EdDSA"):
        verify_ear_cwt(token, P256.public_key())


def test_a_mac_is_not_an_ear() -> None:
    token = cose.mac0(cbor.dumps(_claims()), cose.SymmetricKey(secret=bytes(32)))
    with pytest.raises(MalformedError):
        verify_ear_cwt(token, P256.public_key())


def test_detached_payload_is_refused() -> None:
    value = cbor.loads(sign_ear_cwt(_result(), P256))
    protected, unprotected, _, signature = value.value
    token = cbor.dumps(cbor.Tag(18, [protected, dict(unprotected), None, signature]))
    with pytest.raises(MalformedError, match="no payload"):
        verify_ear_cwt(token, P256.public_key())


@pytest.mark.parametrize(
    "key",
    [
        ec.derive_private_key(0xE5, ec.SECP521R1()).public_key(),
        RSA.public_key(),
    ],
    ids=["P-521", "RSA"],
)
def test_unsupported_verification_keys_are_refused(key: Any) -> None:
    with pytest.raises(AlgorithmError):
        verify_ear_cwt(sign_ear_cwt(_result(), P256), key)


def test_unsupported_signing_keys_are_refused() -> None:
    with pytest.raises(AlgorithmError, match="not secp521r1"):
        sign_ear_cwt(_result(), ec.derive_private_key(0xE5, ec.SECP521R1()))
    with pytest.raises(AlgorithmError, match="needs an EC P-256 or P-384 or an Ed25519"):
        sign_ear_cwt(_result(), RSA)  # type: ignore[arg-type]


def test_oversize_token_is_refused() -> None:
    with pytest.raises(OversizeError, match="more than 65536"):
        verify_ear_cwt(b"\x00" * (64 * 1024 + 1), P256.public_key())


def test_text_token_is_refused() -> None:
    with pytest.raises(MalformedError, match="a CWT EAR is a byte string"):
        verify_ear_cwt("eyJ.x.y", P256.public_key())  # type: ignore[arg-type]


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(CBORError):
        verify_ear_cwt(sign_ear_cwt(_result(), P256) + b"\x00", P256.public_key())


def test_payload_that_is_not_a_map_is_refused() -> None:
    with pytest.raises(CBORError):
        verify_ear_cwt(_signed([1, 2]), P256.public_key())
    with pytest.raises(ClaimError, match="EAR claims set is not a CBOR map"):
        from_cwt_claims([1, 2])


def test_expired_ear_is_refused() -> None:
    token = sign_ear_cwt(_result(), P256)
    verify_ear_cwt(token, P256.public_key(), now=NOW + dt.timedelta(minutes=59))
    with pytest.raises(ExpiredError, match="EAR expired at"):
        verify_ear_cwt(token, P256.public_key(), now=NOW + dt.timedelta(hours=1))


# ---- claims: one test per rejection ----------------------------------------------------------

CLAIM_REJECTIONS = [
    ("profile-missing", _claims(profile=_DROP), r"eat_profile \(265\) is None, expected"),
    (
        "profile-other",
        _claims(profile="tag:example.com,2024:other"),
        r"eat_profile \(265\) is 'tag:example",
    ),
    ("profile-bytes", _claims(profile=EAR_PROFILE.encode()), r"eat_profile \(265\) is b'tag"),
    ("iat-missing", _claims(iat=_DROP), r"iat \(6\) claim missing"),
    ("iat-float", _claims(iat=1.5e9), r"iat \(6\) must be an integer"),
    ("iat-bool", _claims(iat=True), r"iat \(6\) must be an integer"),
    ("iat-range", _claims(iat=2**62), r"iat \(6\) is out of range"),
    ("exp-text", _claims(exp="soon"), r"exp \(4\) must be an integer"),
    ("verifier-missing", _claims(verifier_id=_DROP), r"ear.verifier-id \(1004\) must be a map"),
    ("verifier-text-keys", _claims(verifier_id={"developer": "d", "build": "b"}), r"\(1004\)"),
    ("verifier-no-build", _claims(verifier_id={0: "d"}), r"ear.verifier-id \(1004\)"),
    ("nonce-text", _claims(nonce="AAAAAAAAAAA"), r"eat_nonce \(10\) must be a byte string"),
    ("nonce-short", _claims(nonce=bytes(7)), r"eat_nonce \(10\) must be 8..64 bytes, got 7"),
    ("nonce-long", _claims(nonce=bytes(65)), r"eat_nonce \(10\) must be 8..64 bytes, got 65"),
    ("raw-evidence-text", _claims(raw_evidence="ev"), r"\(1002\) must be a byte string"),
    ("submods-missing", _claims(submods=_DROP), r"submods \(266\) must be a non-empty map"),
    ("submods-empty", _claims(submods={}), r"submods \(266\) must be a non-empty map"),
    ("submods-array", _claims(submods=[{1000: 2}]), r"submods \(266\) must be a non-empty map"),
    ("submod-int-label", _claims(submods={1: {1000: 0}}), "label 1 is not a text string"),
    ("appraisal-not-map", _claims(submods={"d": [2]}), "an EAR-appraisal must be a map"),
]

APPRAISAL_REJECTIONS = [
    ("status-missing", _appraisal_claims(status=_DROP), r"ear.status \(1000\) missing"),
    ("status-3", _appraisal_claims(status=3), r"must be 0, 2, 32 or 96, got 3"),
    ("status-text", _appraisal_claims(status="affirming"), "got 'affirming'"),
    ("status-bool", _appraisal_claims(status=False), "got False"),
    ("status-better", _appraisal_claims(status=0), "ear.status none is better than"),
    ("vector-empty", _appraisal_claims(trust_vector={}), r"\(1001\) must be a non-empty map"),
    ("vector-array", _appraisal_claims(trust_vector=[2]), r"\(1001\) must be a non-empty map"),
    ("vector-key-8", _appraisal_claims(trust_vector={8: 2}), "unknown category 8"),
    ("vector-key-name", _appraisal_claims(trust_vector={"hardware": 2}), "category 'hardware'"),
    ("vector-128", _appraisal_claims(trust_vector={4: 128}), "claim 128 is outside -128..127"),
    ("vector-minus-129", _appraisal_claims(trust_vector={4: -129}), "claim -129 is outside"),
    ("vector-text", _appraisal_claims(trust_vector={4: "2"}), "hardware: expected an integer"),
    ("policy-bytes", _appraisal_claims(policy_id=b"p"), "appraisal-policy-id must be a text"),
    ("extension-array", _appraisal_claims(extension=[]), r"\(-75000\) must be a map"),
    ("reasons-text", _ours(reasons="bad"), "reasons must be an array of text strings"),
    ("reasons-bytes", _ours(reasons=[b"x"]), "reasons must be an array of text strings"),
    ("ueid-text", _ours(ueid="01"), "ueid must be a byte string"),
    ("product-bytes", _ours(product=b"p"), "product must be a text string"),
    ("firmware-int", _ours(firmware_version=1), "firmware-version must be a text string"),
    ("device-key-text", _ours(device_key="MFkw"), "device-key must be a byte string"),
    ("device-key-junk", _ours(device_key=b"\x30\x00"), "device-key is not a public key"),
]


@pytest.mark.parametrize(
    ("claims", "message"),
    [(c, m) for _, c, m in CLAIM_REJECTIONS + APPRAISAL_REJECTIONS],
    ids=[name for name, _, _ in CLAIM_REJECTIONS + APPRAISAL_REJECTIONS],
)
def test_claim_rejections(claims: dict[Any, Any], message: str) -> None:
    with pytest.raises(ClaimError, match=message):
        verify_ear_cwt(_signed(claims), P256.public_key())


def test_signing_refuses_a_nonce_outside_8_to_64_bytes() -> None:
    with pytest.raises(ClaimError, match=r"eat_nonce must be 8\.\.64 bytes, got 4"):
        sign_ear_cwt(_result(nonce=b"\x01" * 4), P256)


def test_verifies_with_the_verifier_certificate() -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ear verifier")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(P384.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(P384, hashes.SHA384())
    )
    assert verify_ear_cwt(sign_ear_cwt(_result(), P384), certificate) == _result()
