"""cose-wg/Examples vectors, judged as tests/vectors/external/cose-wg-examples/README.md says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgetrust.attest import cose, keys
from edgetrust.errors import AlgorithmError, MalformedError, SignatureError

SET = "cose-wg-examples"


def _vector(vectors_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((vectors_dir / "external" / SET / name).read_text())
    return data


def _key(spec: dict[str, Any]) -> cose.VerificationKey:
    """The example's key, as a JWK (the *_hex members turned into base64url), loaded by keys.py."""
    import base64

    jwk: dict[str, str] = {}
    for name, value in spec.items():
        if name.endswith("_hex"):
            raw = bytes.fromhex(value)
            jwk[name[:-4]] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        else:
            jwk[name] = value
    jwk.pop("d", None)  # verification only: the public part
    return keys.load_verification_key(json.dumps(jwk).encode())


def _token(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["output"]["cbor"])


def _sign0(vector: dict[str, Any]) -> tuple[bytes, cose.VerificationKey, bytes]:
    sign0 = vector["input"]["sign0"]
    return _token(vector), _key(sign0["key"]), bytes.fromhex(sign0.get("external", ""))


@pytest.mark.parametrize(
    "name",
    [
        "sign1-tests_sign-pass-01.json",
        "sign1-tests_sign-pass-02.json",
        "sign1-tests_sign-pass-03.json",
        "ecdsa-examples_ecdsa-sig-01.json",
        "ecdsa-examples_ecdsa-sig-02.json",
        "eddsa-examples_eddsa-sig-01.json",
        "CWT_A_3.json",
    ],
)
def test_valid_sign1(vectors_dir: Path, name: str) -> None:
    vector = _vector(vectors_dir, name)
    assert not vector.get("fail")
    token, key, aad = _sign0(vector)
    msg = cose.verify_sign1(token, key, external_aad=aad, outer_tags=(61,))
    # our Sig_structure is byte-for-byte the example's ToBeSigned
    expected = bytes.fromhex(vector["intermediates"]["ToBeSign_hex"])
    assert cose.sig_structure(msg, external_aad=aad) == expected
    plaintext = vector["input"].get("plaintext")
    if plaintext is not None:
        assert msg.payload == plaintext.encode()
    else:
        assert msg.payload == bytes.fromhex(vector["input"]["plaintext_hex"])


def test_sign_pass_01_protected_h_a0_with_unprotected_alg(vectors_dir: Path) -> None:
    token, key, _ = _sign0(_vector(vectors_dir, "sign1-tests_sign-pass-01.json"))
    msg = cose.verify_sign1(token, key)
    assert msg.protected_bytes == b"\xa0"  # kept as received
    assert msg.protected == {}
    assert msg.alg is cose.Algorithm.ES256  # read from the unprotected bucket
    # RFC 9052 4.4: no protected attributes -> zero-length body_protected in the Sig_structure
    assert cose.sig_structure(msg)[12:14] == b"\x40\x40"


def test_sign_pass_02_needs_its_external_aad(vectors_dir: Path) -> None:
    token, key, aad = _sign0(_vector(vectors_dir, "sign1-tests_sign-pass-02.json"))
    assert aad == bytes.fromhex("11aa22bb33cc44dd55006699")
    cose.verify_sign1(token, key, external_aad=aad)
    with pytest.raises(SignatureError):
        cose.verify_sign1(token, key)


def test_sign_pass_03_is_untagged(vectors_dir: Path) -> None:
    token, key, _ = _sign0(_vector(vectors_dir, "sign1-tests_sign-pass-03.json"))
    assert cose.verify_sign1(token, key).tagged is False
    with pytest.raises(MalformedError):
        cose.verify_sign1(token, key, require_tag=True)


def test_ecdsa_sig_02_is_es384_p384(vectors_dir: Path) -> None:
    token, key, _ = _sign0(_vector(vectors_dir, "ecdsa-examples_ecdsa-sig-02.json"))
    assert cose.verify_sign1(token, key).alg is cose.Algorithm.ES384


def test_eddsa_sig_01_is_ed25519(vectors_dir: Path) -> None:
    token, key, _ = _sign0(_vector(vectors_dir, "eddsa-examples_eddsa-sig-01.json"))
    assert cose.verify_sign1(token, key).alg is cose.Algorithm.EdDSA


def test_cwt_a_3_with_empty_unprotected_header(vectors_dir: Path) -> None:
    token, key, _ = _sign0(_vector(vectors_dir, "CWT_A_3.json"))
    assert token[:1] == b"\xd2"  # COSE_Sign1 tag 18 (this file has no CWT tag 61)
    msg = cose.verify_sign1(token, key)
    assert msg.unprotected == {}


def test_cwt_a_4_mac0_without_tag_61(vectors_dir: Path) -> None:
    vector = _vector(vectors_dir, "CWT_A_4.json")
    key = _key(vector["input"]["mac0"]["recipients"][0]["key"])
    token = _token(vector)
    assert token[:1] == b"\xd1"  # tag 17, no tag 61
    msg = cose.verify_mac0(token, key)
    assert msg.alg is cose.Algorithm.HMAC_256_64
    assert cose.mac_structure(msg) == bytes.fromhex(vector["intermediates"]["ToMac_hex"])


def test_sign_fail_01_wrong_tag(vectors_dir: Path) -> None:
    vector = _vector(vectors_dir, "sign1-tests_sign-fail-01.json")
    assert vector["fail"] is True
    token, key, _ = _sign0(vector)
    with pytest.raises(MalformedError, match="tag 998"):
        cose.verify_sign1(token, key)


def test_sign_fail_02_signature_altered(vectors_dir: Path) -> None:
    vector = _vector(vectors_dir, "sign1-tests_sign-fail-02.json")
    assert vector["fail"] is True
    token, key, _ = _sign0(vector)
    with pytest.raises(SignatureError):
        cose.verify_sign1(token, key)


def test_sign_fail_03_unknown_alg(vectors_dir: Path) -> None:
    vector = _vector(vectors_dir, "sign1-tests_sign-fail-03.json")
    assert vector["fail"] is True
    token, key, _ = _sign0(vector)
    with pytest.raises(AlgorithmError, match="-999"):
        cose.verify_sign1(token, key)


@pytest.mark.parametrize("name", ["sign1-tests_sign-fail-06.json", "sign1-tests_sign-fail-07.json"])
def test_sign_fail_protected_attribute_added_or_removed(vectors_dir: Path, name: str) -> None:
    vector = _vector(vectors_dir, name)
    assert vector["fail"] is True
    token, key, _ = _sign0(vector)
    msg = cose.decode_sign1(token)
    assert msg.alg is cose.Algorithm.ES256  # well formed, known alg: only the signature fails
    with pytest.raises(SignatureError):
        cose.verify_sign1(token, key)
