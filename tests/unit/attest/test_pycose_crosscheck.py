"""pycose 1.1.0 as an independent cross-check: our tokens verify with it, its tokens with ours.

pycose 1.1.0 cannot *decode* tagged COSE messages with cbor2 6: cbor2 6 returns a tag's array as
a tuple and pycose's ``CoseMessage.decode`` only accepts a list ("Bytes cannot be decoded as COSE
message"). So for the direction "ours -> pycose" this test strips the tag (decodes our token with
edgetrust's strict CBOR layer and hands pycose the untagged four-element array through
``from_cose_obj``). pycose's *encoding* of tagged messages works and is verified by us unchanged.
pycose is used in tests only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from pycose.algorithms import HMAC256, HMAC512, HMAC25664, EdDSA, Es256, Es384
from pycose.headers import KID, Algorithm
from pycose.keys.cosekey import CoseKey
from pycose.messages.mac0message import Mac0Message as PycoseMac0
from pycose.messages.sign1message import Sign1Message as PycoseSign1

from edgetrust.attest import cbor, cose, ear, eat, keys
from edgetrust.errors import AlgorithmError, SignatureError

P256 = ec.derive_private_key(0x5EED1, ec.SECP256R1())
P384 = ec.derive_private_key(0x5EED2, ec.SECP384R1())
ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x31" * 32)
SECRET = cose.SymmetricKey(secret=bytes(range(32)))  # pycose accepts 16, 24 or 32 bytes
PAYLOAD = eat.encode_claims(eat.EatClaims(nonce=b"\x07" * 32, iat=1_750_000_000, swname="fw"))


def _pycose_key(key: cose.PrivateKey | cose.SymmetricKey, *, private: bool) -> Any:
    cose_key: dict[int, Any] = keys.encode_cose_key(key)
    if private and isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        cose_key[-4] = key.private_numbers().private_value.to_bytes(size, "big")
    elif private and isinstance(key, ed25519.Ed25519PrivateKey):
        cose_key[-4] = key.private_bytes_raw()
    return CoseKey.from_dict(cose_key)


def _untagged_fields(token: bytes) -> list[Any]:
    # pycose 1.1.0 + cbor2 6 cannot decode tags (see the module docstring): strip the tag here
    value = cbor.loads(token)
    assert isinstance(value, cbor.Tag)
    protected, unprotected, payload, last = value.value
    return [protected, dict(unprotected), payload, last]


SIGNERS = [(P256, Es256), (P384, Es384), (ED25519, EdDSA)]
SIGNER_IDS = ["ES256", "ES384", "EdDSA"]


@pytest.mark.parametrize(("key", "pycose_alg"), SIGNERS, ids=SIGNER_IDS)
def test_our_sign1_verifies_with_pycose(key: cose.PrivateKey, pycose_alg: Any) -> None:
    token = cose.sign1(PAYLOAD, key, kid=b"device")
    msg = PycoseSign1.from_cose_obj(_untagged_fields(token), True)
    msg.key = _pycose_key(key, private=False)
    assert msg.get_attr(Algorithm) is pycose_alg
    assert msg.verify_signature()


def test_our_device_eat_verifies_with_pycose() -> None:
    claims = eat.EatClaims(eat_profile=eat.DEVICE_PROFILE, nonce=b"\x01" * 32, iat=1_750_000_000)
    token = eat.make_eat(claims, P256)
    msg = PycoseSign1.from_cose_obj(_untagged_fields(token), True)
    msg.key = _pycose_key(P256, private=False)
    assert msg.verify_signature()
    assert eat.decode_claims(cbor.loads(msg.payload)) == claims


@pytest.mark.parametrize(
    ("alg", "pycose_alg"),
    [
        (cose.Algorithm.HMAC_256_64, HMAC25664),
        (cose.Algorithm.HMAC_256_256, HMAC256),
        (cose.Algorithm.HMAC_512_512, HMAC512),
    ],
)
def test_our_mac0_verifies_with_pycose(alg: cose.Algorithm, pycose_alg: Any) -> None:
    token = cose.mac0(PAYLOAD, SECRET, alg=alg)
    msg = PycoseMac0.from_cose_obj(_untagged_fields(token), True)
    msg.key = _pycose_key(SECRET, private=False)
    assert msg.get_attr(Algorithm) is pycose_alg
    assert msg.verify_tag()


@pytest.mark.parametrize(("key", "pycose_alg"), SIGNERS, ids=SIGNER_IDS)
def test_pycose_sign1_verifies_with_ours(key: cose.PrivateKey, pycose_alg: Any) -> None:
    msg = PycoseSign1(phdr={Algorithm: pycose_alg}, uhdr={KID: b"pycose"}, payload=PAYLOAD)
    msg.key = _pycose_key(key, private=True)
    token = msg.encode()  # tagged (18): encoding works with cbor2 6
    verified = cose.verify_sign1(token, key.public_key(), require_tag=True)
    assert verified.payload == PAYLOAD
    assert verified.kid == b"pycose"
    assert eat.verify_eat(token, key.public_key()).swname == "fw"


def test_pycose_sign1_with_a_wrong_key_fails_with_ours() -> None:
    msg = PycoseSign1(phdr={Algorithm: Es256}, payload=PAYLOAD)
    msg.key = _pycose_key(P256, private=True)
    other = ec.derive_private_key(0xD1FF, ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError):
        cose.verify_sign1(msg.encode(), other)


@pytest.mark.parametrize(
    ("alg", "pycose_alg"),
    [
        (cose.Algorithm.HMAC_256_64, HMAC25664),
        (cose.Algorithm.HMAC_256_256, HMAC256),
        (cose.Algorithm.HMAC_512_512, HMAC512),
    ],
)
def test_pycose_mac0_verifies_with_ours(alg: cose.Algorithm, pycose_alg: Any) -> None:
    msg = PycoseMac0(phdr={Algorithm: pycose_alg}, payload=PAYLOAD)
    msg.key = _pycose_key(SECRET, private=True)
    verified = cose.verify_mac0(msg.encode(), SECRET, require_tag=True)
    assert verified.alg is alg
    assert verified.payload == PAYLOAD


def test_pycose_signs_with_external_aad_like_ours() -> None:
    msg = PycoseSign1(phdr={Algorithm: Es256}, payload=PAYLOAD, external_aad=b"aad")
    msg.key = _pycose_key(P256, private=True)
    token = msg.encode()
    cose.verify_sign1(token, P256.public_key(), external_aad=b"aad")
    with pytest.raises(SignatureError):
        cose.verify_sign1(token, P256.public_key())


# ---- EAR as a CWT (attest.ear_cwt) ------------------------------------------------------------

EAR_RESULT = ear.AttestationResult(
    submods={
        ear.DEVICE_SUBMOD: ear.Appraisal(
            status=ear.Tier.AFFIRMING,
            trust_vector=ear.TrustVector(instance_identity=2, executables=2, hardware=2),
            policy_id="edgetrust/default",
            ueid=b"\x01" * 17,
        )
    },
    verifier_id=ear.VerifierId(developer="edgetrust", build="0.1.0"),
    issued_at=dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
    nonce=b"\x07" * 32,
)


@pytest.mark.parametrize(("key", "pycose_alg"), SIGNERS, ids=SIGNER_IDS)
def test_our_ear_cwt_verifies_with_pycose(key: cose.PrivateKey, pycose_alg: Any) -> None:
    assert not isinstance(key, ed448.Ed448PrivateKey)
    token = ear.sign_ear_cwt(EAR_RESULT, key, kid="verifier")
    msg = PycoseSign1.from_cose_obj(_untagged_fields(token), True)
    msg.key = _pycose_key(key, private=False)
    assert msg.get_attr(Algorithm) is pycose_alg
    assert msg.get_attr(KID) == b"verifier"
    assert msg.verify_signature()
    assert ear.from_cwt_claims(cbor.loads(msg.payload)) == EAR_RESULT


@pytest.mark.parametrize(("key", "pycose_alg"), SIGNERS, ids=SIGNER_IDS)
def test_pycose_ear_cwt_verifies_with_ours(key: cose.PrivateKey, pycose_alg: Any) -> None:
    payload = cbor.dumps(ear.to_cwt_claims(EAR_RESULT))
    msg = PycoseSign1(phdr={Algorithm: pycose_alg}, payload=payload)
    msg.key = _pycose_key(key, private=True)
    public = key.public_key()
    assert not isinstance(public, ed448.Ed448PublicKey)
    assert ear.verify_ear_cwt(msg.encode(), public) == EAR_RESULT


def test_pycose_ear_cwt_with_a_wrong_key_fails_with_ours() -> None:
    msg = PycoseSign1(phdr={Algorithm: Es256}, payload=cbor.dumps(ear.to_cwt_claims(EAR_RESULT)))
    msg.key = _pycose_key(P256, private=True)
    other = ec.derive_private_key(0xD1FF, ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError):
        ear.verify_ear_cwt(msg.encode(), other)


def test_pycose_ear_cwt_with_an_unprotected_alg_fails_with_ours() -> None:
    msg = PycoseSign1(uhdr={Algorithm: Es256}, payload=cbor.dumps(ear.to_cwt_claims(EAR_RESULT)))
    msg.key = _pycose_key(P256, private=True)
    with pytest.raises(AlgorithmError, match="protected header"):
        ear.verify_ear_cwt(msg.encode(), P256.public_key())
