"""Key loading: every accepted form, and a KeyFileError for everything else."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from edgetrust.attest import cbor, cose, keys
from edgetrust.errors import ClaimError, KeyFileError

P256 = ec.derive_private_key(0xC0FFEE, ec.SECP256R1())
P384 = ec.derive_private_key(0xBEEF, ec.SECP384R1())
ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
ED448 = ed448.Ed448PrivateKey.from_private_bytes(b"\x09" * 57)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pem_public(key: cose.PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    import datetime as dt

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


# --- accepted forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", [P256, P384, ED25519, ED448], ids=["P256", "P384", "Ed25519", "Ed448"]
)
def test_pem_and_der_public_keys(key: cose.PrivateKey) -> None:
    public = key.public_key()
    pem = _pem_public(key)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert keys.load_verification_key(pem) == public
    assert keys.load_verification_key(der) == public


def test_pem_and_der_certificates() -> None:
    cert = _certificate(P256)
    assert keys.load_verification_key(cert.public_bytes(serialization.Encoding.PEM)) == (
        P256.public_key()
    )
    assert keys.load_verification_key(cert.public_bytes(serialization.Encoding.DER)) == (
        P256.public_key()
    )


def test_private_key_files_yield_the_public_half_for_verification() -> None:
    pem = P256.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert keys.load_verification_key(pem) == P256.public_key()
    signing = keys.load_signing_key(pem)
    assert isinstance(signing, ec.EllipticCurvePrivateKey)
    der = ED25519.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert keys.load_verification_key(der) == ED25519.public_key()


def test_jwk_ec_okp_oct() -> None:
    numbers = P384.public_key().public_numbers()
    ec_jwk = {
        "kty": "EC",
        "crv": "P-384",
        "x": _b64(numbers.x.to_bytes(48, "big")),
        "y": _b64(numbers.y.to_bytes(48, "big")),
    }
    assert keys.load_verification_key(json.dumps(ec_jwk).encode()) == P384.public_key()
    okp = {"kty": "OKP", "crv": "Ed25519", "x": _b64(ED25519.public_key().public_bytes_raw())}
    assert keys.load_verification_key(json.dumps(okp).encode()) == ED25519.public_key()
    oct_jwk = {"kty": "oct", "k": _b64(b"s" * 32), "kid": "k1"}
    loaded = keys.load_verification_key(json.dumps(oct_jwk).encode())
    assert loaded == cose.SymmetricKey(secret=b"s" * 32, kid=b"k1")


def test_jwk_with_d_is_a_signing_key() -> None:
    numbers = P256.private_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.public_numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.public_numbers.y.to_bytes(32, "big")),
        "d": _b64(numbers.private_value.to_bytes(32, "big")),
    }
    signing = keys.load_signing_key(json.dumps(jwk).encode())
    token = cose.sign1(b"x", signing)  # type: ignore[arg-type]
    cose.verify_sign1(token, keys.load_verification_key(json.dumps(jwk).encode()))


def test_jwk_set_with_one_key() -> None:
    okp = {"kty": "OKP", "crv": "Ed25519", "x": _b64(ED25519.public_key().public_bytes_raw())}
    assert keys.load_verification_key(json.dumps({"keys": [okp]}).encode()) == ED25519.public_key()


@pytest.mark.parametrize(
    "key", [P256, P384, ED25519, ED448], ids=["P256", "P384", "Ed25519", "Ed448"]
)
def test_cose_key_round_trip(key: cose.PrivateKey) -> None:
    encoded = cbor.dumps(keys.encode_cose_key(key, kid=b"kid"))
    assert keys.load_verification_key(encoded) == key.public_key()


def test_cose_key_compressed_ec2_point() -> None:
    cose_key = keys.encode_cose_key(P256)
    cose_key[-3] = bool(P256.public_key().public_numbers().y & 1)
    assert keys.load_verification_key(cbor.dumps(cose_key)) == P256.public_key()


def test_cose_key_with_d_loads_as_a_signing_key() -> None:
    cose_key = keys.encode_cose_key(ED25519)
    cose_key[-4] = ED25519.private_bytes_raw()
    signing = keys.load_signing_key(cbor.dumps(cose_key))
    assert isinstance(signing, ed25519.Ed25519PrivateKey)
    # for verification the private part is ignored
    assert keys.load_verification_key(cbor.dumps(cose_key)) == ED25519.public_key()


def test_cose_key_symmetric() -> None:
    data = cbor.dumps({1: 4, 2: b"our-secret", -1: b"k" * 32, 3: 5})
    assert keys.load_verification_key(data) == cose.SymmetricKey(
        secret=b"k" * 32, kid=b"our-secret"
    )


def test_raw_hmac_bytes() -> None:
    secret = bytes(range(200, 232))
    assert keys.load_verification_key(secret) == cose.SymmetricKey(secret=secret)


# --- rejected -----------------------------------------------------------------------------------


def test_empty_file() -> None:
    with pytest.raises(KeyFileError, match="empty"):
        keys.load_verification_key(b"")


def test_text_that_is_no_key() -> None:
    with pytest.raises(KeyFileError, match="text"):
        keys.load_verification_key(b"00112233445566778899aabbccddeeff\n")


def test_rsa_keys_are_unsupported() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - only its type matters
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyFileError, match="unsupported key type"):
        keys.load_verification_key(pem)


def test_unsupported_curve() -> None:
    pem = _pem_public(ec.generate_private_key(ec.SECP256K1()))
    with pytest.raises(KeyFileError, match="secp256k1"):
        keys.load_verification_key(pem)


def test_broken_pem() -> None:
    with pytest.raises(KeyFileError, match="PEM"):
        keys.load_verification_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_invalid_json() -> None:
    with pytest.raises(KeyFileError, match="JSON"):
        keys.load_verification_key(b'{"kty": ')


def test_jwk_unknown_kty() -> None:
    with pytest.raises(KeyFileError, match="RSA"):
        keys.load_verification_key(b'{"kty": "RSA", "n": "AQAB", "e": "AQAB"}')


def test_jwk_bad_base64() -> None:
    with pytest.raises(KeyFileError, match="base64url"):
        keys.load_verification_key(b'{"kty": "oct", "k": "!!!not base64!!!"}')


def test_jwk_point_not_on_curve() -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": _b64(b"\x01" * 32), "y": _b64(b"\x02" * 32)}
    with pytest.raises(KeyFileError, match="invalid JWK"):
        keys.load_verification_key(json.dumps(jwk).encode())


def test_cose_key_unknown_kty() -> None:
    with pytest.raises(KeyFileError, match="kty"):
        keys.load_verification_key(cbor.dumps({1: 3, -1: b"x" * 32}))


def test_cose_key_wrong_coordinate_size() -> None:
    cose_key = keys.encode_cose_key(P256)
    cose_key[-2] = cose_key[-2][1:]
    with pytest.raises(KeyFileError, match="32 bytes"):
        keys.load_verification_key(cbor.dumps(cose_key))


def test_cose_key_private_d_not_matching() -> None:
    cose_key = keys.encode_cose_key(P256)
    cose_key[-4] = (12345).to_bytes(32, "big")
    with pytest.raises(KeyFileError, match="does not match"):
        keys.load_signing_key(cbor.dumps(cose_key))


def test_cose_key_error_class_is_selectable() -> None:
    with pytest.raises(ClaimError):
        keys.decode_cose_key({1: 2, -1: 99}, error=ClaimError)


def test_public_key_cannot_sign() -> None:
    with pytest.raises(KeyFileError, match="private key is needed"):
        keys.load_signing_key(cbor.dumps(keys.encode_cose_key(P256)))
    with pytest.raises(KeyFileError, match="private key is needed"):
        keys.load_signing_key(_pem_public(P256))


def test_raw_key_too_short() -> None:
    with pytest.raises(KeyFileError, match="16 bytes"):
        keys.load_verification_key(b"\x00\x01\x02\xff")


def test_raw_binary_too_long() -> None:
    with pytest.raises(KeyFileError, match="no supported key form"):
        keys.load_verification_key(b"\xff" * 5000)
