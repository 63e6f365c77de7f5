"""attest.jws: compact JWS ES256/ES384 on its own (EAR's signed form is tested in test_ear)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgetrust.attest import jws
from edgetrust.errors import AlgorithmError, MalformedError, OversizeError

P256 = ec.derive_private_key(0x5EED, ec.SECP256R1())
P384 = ec.derive_private_key(0x5EED, ec.SECP384R1())


@pytest.mark.parametrize(("key", "alg"), [(P256, "ES256"), (P384, "ES384")])
def test_sign_then_verify_round_trips(key: ec.EllipticCurvePrivateKey, alg: str) -> None:
    token = jws.sign_jws({"a": 1, "b": "x"}, key, kid="k1")
    header, payload = jws.verify_jws(token, key.public_key())
    assert header == {"alg": alg, "typ": "JWT", "kid": "k1"}
    assert jws.strict_json(payload, "payload") == {"a": 1, "b": "x"}


def test_sign_jws_refuses_a_non_ec_key() -> None:
    with pytest.raises(AlgorithmError, match="JWS signing needs an EC"):
        jws.sign_jws({}, ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]


def test_verify_jws_refuses_the_other_curve() -> None:
    with pytest.raises(AlgorithmError, match="does not match the ES384"):
        jws.verify_jws(jws.sign_jws({}, P256), P384.public_key())


def test_verify_jws_refuses_an_oversize_token() -> None:
    with pytest.raises(OversizeError):
        jws.verify_jws("a" * (jws.MAX_JWS_SIZE + 1), P256.public_key())


def test_strict_json_refuses_duplicate_members() -> None:
    with pytest.raises(MalformedError, match="duplicate JSON member 'a'"):
        jws.strict_json(b'{"a": 1, "a": 2}', "doc")


def test_b64url_decode_refuses_padding() -> None:
    with pytest.raises(MalformedError, match="not unpadded base64url"):
        jws.b64url_decode("YQ==")
