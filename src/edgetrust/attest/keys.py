"""Loading the keys that verify (or, for tests and the demo, make) COSE messages.

Accepted forms, tried in this order:

1. PEM: ``PUBLIC KEY``, ``CERTIFICATE`` (its subject key), ``PRIVATE KEY`` / ``EC PRIVATE KEY``
   (for verification its public half is used).
2. JSON: a JWK (RFC 7517/7518/8037): ``EC`` (P-256/384/521), ``OKP`` (Ed25519/Ed448), ``oct``.
3. DER: SubjectPublicKeyInfo, certificate, or PKCS#8 / SEC1 private key.
4. CBOR: a COSE_Key (RFC 9052 section 7, RFC 9053 section 7): EC2, OKP, Symmetric.
5. Anything else that is binary (not text) and 16..1024 bytes long: a raw HMAC key.

A COSE_Key's or JWK's ``alg`` is not bound to the key: the RFC 8392 A.4 example labels its HMAC key
with alg 10 (AES-CCM) yet uses it with HMAC 256/64. The algorithm/key binding that matters (a key
type and curve admit exactly the algorithms of :mod:`edgetrust.attest.cose`) is enforced there.

Errors are :class:`~edgetrust.errors.KeyFileError` (the operator's file); a COSE_Key met inside
evidence (the ``cnf`` claim) is decoded with ``error=ClaimError`` instead.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from edgetrust.attest import cbor
from edgetrust.attest.cose import PrivateKey, PublicKey, SigningKey, SymmetricKey, VerificationKey
from edgetrust.errors import Error, EvidenceError, KeyFileError

__all__ = [
    "COSE_KEY_LABELS",
    "PrivateKey",
    "PublicKey",
    "SigningKey",
    "SymmetricKey",
    "VerificationKey",
    "decode_cose_key",
    "encode_cose_key",
    "load_signing_key",
    "load_verification_key",
]

#: COSE_Key labels (RFC 9052 section 7.1, RFC 9053 section 7).
COSE_KEY_LABELS: Final = {
    "kty": 1,
    "kid": 2,
    "alg": 3,
    "crv": -1,
    "x": -2,
    "y": -3,
    "d": -4,
    "k": -1,
}
_KTY_OKP: Final = 1
_KTY_EC2: Final = 2
_KTY_SYMMETRIC: Final = 4
_EC2_CURVES: Final[dict[int, ec.EllipticCurve]] = {
    1: ec.SECP256R1(),
    2: ec.SECP384R1(),
    3: ec.SECP521R1(),
}
_OKP_ED25519: Final = 6
_OKP_ED448: Final = 7
_JWK_CURVES: Final[dict[str, ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_MAX_RAW_KEY: Final = 1024


def _coordinate_size(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def _supported(key: object, error: type[Error]) -> PublicKey | PrivateKey:
    if isinstance(
        key,
        (
            ec.EllipticCurvePublicKey,
            ec.EllipticCurvePrivateKey,
            ed25519.Ed25519PublicKey,
            ed25519.Ed25519PrivateKey,
            ed448.Ed448PublicKey,
            ed448.Ed448PrivateKey,
        ),
    ):
        if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)) and (
            key.curve.name not in {"secp256r1", "secp384r1", "secp521r1"}
        ):
            raise error(f"unsupported EC curve {key.curve.name}")
        return key
    raise error(f"unsupported key type {type(key).__name__} (expected EC, Ed25519/Ed448 or HMAC)")


# --------------------------------------------------------------------------------------------
# COSE_Key
# --------------------------------------------------------------------------------------------


def _bstr(mapping: Mapping[Any, Any], label: int, what: str, error: type[Error]) -> bytes:
    value = mapping.get(label)
    if not isinstance(value, bytes):
        raise error(f"COSE_Key parameter {what} ({label}) must be a byte string")
    return value


def decode_cose_key(
    mapping: Mapping[Any, Any], *, error: type[Error] = KeyFileError, private: bool = False
) -> VerificationKey | SigningKey:
    """A key from a decoded COSE_Key map. With ``private=True`` the private part (``d``) is used.

    Without ``private`` a ``d`` present in the map is ignored and the public key is returned.
    """
    if not cbor.is_map(mapping):
        raise error("a COSE_Key must be a CBOR map")
    kty = mapping.get(1)
    if kty == _KTY_SYMMETRIC:
        secret = _bstr(mapping, -1, "k", error)
        kid = mapping.get(2)
        try:
            return SymmetricKey(secret=secret, kid=kid if isinstance(kid, bytes) else None)
        except KeyFileError as e:
            raise error(str(e)) from e
    if kty == _KTY_EC2:
        curve = _EC2_CURVES.get(mapping.get(-1))  # type: ignore[arg-type]
        if curve is None or isinstance(mapping.get(-1), bool):
            raise error(f"unsupported EC2 curve {mapping.get(-1)!r}")
        size = _coordinate_size(curve)
        x = _bstr(mapping, -2, "x", error)
        if len(x) != size:
            raise error(f"EC2 x must be {size} bytes, got {len(x)}")
        y = mapping.get(-3)
        try:
            if isinstance(y, bool):  # point compression: y is the sign bit
                public = ec.EllipticCurvePublicKey.from_encoded_point(
                    curve, bytes([0x03 if y else 0x02]) + x
                )
            elif isinstance(y, bytes) and len(y) == size:
                public = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + x + y)
            else:
                raise error(f"EC2 y must be {size} bytes or a boolean")
            if private:
                if -4 not in mapping:
                    raise error("the COSE_Key has no private part (d): a private key is needed")
                d = _bstr(mapping, -4, "d", error)
                secret_key = ec.derive_private_key(int.from_bytes(d, "big"), curve)
                if secret_key.public_key() != public:
                    raise error("EC2 private key d does not match x/y")
                return secret_key
        except ValueError as e:
            raise error(f"invalid EC2 key: {e}") from e
        return public
    if kty == _KTY_OKP:
        crv = mapping.get(-1)
        if isinstance(crv, bool) or crv not in (_OKP_ED25519, _OKP_ED448):
            raise error(f"unsupported OKP curve {crv!r} (expected Ed25519 or Ed448)")
        x = _bstr(mapping, -2, "x", error)
        try:
            if crv == _OKP_ED25519:
                okp_public: PublicKey = ed25519.Ed25519PublicKey.from_public_bytes(x)
            else:
                okp_public = ed448.Ed448PublicKey.from_public_bytes(x)
            if private:
                if -4 not in mapping:
                    raise error("the COSE_Key has no private part (d): a private key is needed")
                d = _bstr(mapping, -4, "d", error)
                okp_private: PrivateKey = (
                    ed25519.Ed25519PrivateKey.from_private_bytes(d)
                    if crv == _OKP_ED25519
                    else ed448.Ed448PrivateKey.from_private_bytes(d)
                )
                if okp_private.public_key() != okp_public:
                    raise error("OKP private key d does not match x")
                return okp_private
        except ValueError as e:
            raise error(f"invalid OKP key: {e}") from e
        return okp_public
    raise error(f"unsupported COSE_Key type (kty) {kty!r}")


def encode_cose_key(
    key: PublicKey | PrivateKey | SymmetricKey, *, kid: bytes | None = None
) -> dict[int, Any]:
    """The COSE_Key map of a key's *public* part (a symmetric key is exported as is)."""
    out: dict[int, Any]
    if isinstance(key, SymmetricKey):
        out = {1: _KTY_SYMMETRIC, -1: key.secret}
        kid = kid if kid is not None else key.kid
    else:
        public = (
            key.public_key()
            if isinstance(
                key,
                (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey),
            )
            else key
        )
        if isinstance(public, ec.EllipticCurvePublicKey):
            crv = {c.name: label for label, c in _EC2_CURVES.items()}.get(public.curve.name)
            if crv is None:
                raise KeyFileError(f"unsupported EC curve {public.curve.name}")
            size = _coordinate_size(public.curve)
            numbers = public.public_numbers()
            out = {
                1: _KTY_EC2,
                -1: crv,
                -2: numbers.x.to_bytes(size, "big"),
                -3: numbers.y.to_bytes(size, "big"),
            }
        elif isinstance(public, ed25519.Ed25519PublicKey):
            out = {1: _KTY_OKP, -1: _OKP_ED25519, -2: public.public_bytes_raw()}
        elif isinstance(public, ed448.Ed448PublicKey):
            out = {1: _KTY_OKP, -1: _OKP_ED448, -2: public.public_bytes_raw()}
        else:
            raise KeyFileError(f"unsupported key type {type(public).__name__}")
    if kid is not None:
        out[2] = kid
    return out


# --------------------------------------------------------------------------------------------
# JWK
# --------------------------------------------------------------------------------------------


def _b64url(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyFileError(f"JWK member {what!r} must be a base64url string")
    text = value.strip().rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeyFileError(f"JWK member {what!r} is not valid base64url") from e


def _from_jwk(jwk: object, *, private: bool) -> VerificationKey | SigningKey:
    if isinstance(jwk, dict) and "keys" in jwk:
        keys = jwk["keys"]
        if not isinstance(keys, list) or len(keys) != 1:
            raise KeyFileError("a JWK Set must hold exactly one key here")
        jwk = keys[0]
    if not isinstance(jwk, dict):
        raise KeyFileError("a JWK must be a JSON object")
    kty = jwk.get("kty")
    kid = jwk["kid"].encode() if isinstance(jwk.get("kid"), str) else None
    try:
        if kty == "oct":
            return SymmetricKey(secret=_b64url(jwk.get("k"), "k"), kid=kid)
        if kty == "EC":
            curve = _JWK_CURVES.get(jwk.get("crv"))  # type: ignore[arg-type]
            if curve is None:
                raise KeyFileError(f"unsupported JWK EC curve {jwk.get('crv')!r}")
            size = _coordinate_size(curve)
            x, y = _b64url(jwk.get("x"), "x"), _b64url(jwk.get("y"), "y")
            if len(x) != size or len(y) != size:
                raise KeyFileError(f"JWK EC coordinates must be {size} bytes")
            public = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
            ).public_key()
            if not private:
                return public
            secret = ec.derive_private_key(int.from_bytes(_b64url(jwk.get("d"), "d"), "big"), curve)
            if secret.public_key() != public:
                raise KeyFileError("JWK private key d does not match x/y")
            return secret
        if kty == "OKP":
            crv = jwk.get("crv")
            x = _b64url(jwk.get("x"), "x")
            if crv == "Ed25519":
                okp: PublicKey = ed25519.Ed25519PublicKey.from_public_bytes(x)
                if private:
                    return ed25519.Ed25519PrivateKey.from_private_bytes(_b64url(jwk.get("d"), "d"))
                return okp
            if crv == "Ed448":
                okp = ed448.Ed448PublicKey.from_public_bytes(x)
                if private:
                    return ed448.Ed448PrivateKey.from_private_bytes(_b64url(jwk.get("d"), "d"))
                return okp
            raise KeyFileError(f"unsupported JWK OKP curve {crv!r}")
    except ValueError as e:
        raise KeyFileError(f"invalid JWK: {e}") from e
    raise KeyFileError(f"unsupported JWK key type {kty!r} (expected EC, OKP or oct)")


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

_PARSE_ERRORS: Final = (ValueError, TypeError, UnsupportedAlgorithm)


def _from_pem(data: bytes, *, private: bool) -> PublicKey | PrivateKey:
    if b"CERTIFICATE-----" in data:
        if private:
            raise KeyFileError("a certificate holds no private key")
        try:
            return _supported(x509.load_pem_x509_certificate(data).public_key(), KeyFileError)
        except _PARSE_ERRORS as e:
            raise KeyFileError(f"unreadable PEM certificate: {e}") from e
    if b"PRIVATE KEY-----" in data:
        try:
            key = _supported(serialization.load_pem_private_key(data, password=None), KeyFileError)
        except _PARSE_ERRORS as e:
            raise KeyFileError(f"unreadable PEM private key: {e}") from e
        return key if private else key.public_key()  # type: ignore[union-attr]
    if b"PUBLIC KEY-----" in data:
        if private:
            raise KeyFileError("the key file holds a public key; a private key is needed to sign")
        try:
            return _supported(serialization.load_pem_public_key(data), KeyFileError)
        except _PARSE_ERRORS as e:
            raise KeyFileError(f"unreadable PEM public key: {e}") from e
    raise KeyFileError("PEM file holds no supported key or certificate")


def _from_der(data: bytes, *, private: bool) -> PublicKey | PrivateKey | None:
    loaders: list[Any] = (
        [lambda d: serialization.load_der_private_key(d, password=None)]
        if private
        else [
            serialization.load_der_public_key,
            lambda d: x509.load_der_x509_certificate(d).public_key(),
            lambda d: serialization.load_der_private_key(d, password=None).public_key(),
        ]
    )
    for loader in loaders:
        try:
            return _supported(loader(data), KeyFileError)
        except _PARSE_ERRORS:
            continue
    return None


def _looks_like_text(data: bytes) -> bool:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _load(data: bytes, *, private: bool) -> VerificationKey | SigningKey:
    if not isinstance(data, bytes) or not data:
        raise KeyFileError("the key file is empty")
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        return _from_pem(stripped, private=private)
    if stripped.startswith(b"{"):
        try:
            return _from_jwk(json.loads(stripped), private=private)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise KeyFileError(f"key file looks like JSON but is not: {e}") from e
    if data[:1] == b"\x30":
        der_key = _from_der(data, private=private)
        if der_key is not None:
            return der_key
    try:
        cose_key = cbor.loads(data, expect=dict)
    except EvidenceError:
        cose_key = None
    if cose_key is not None and 1 in cose_key:
        return decode_cose_key(cose_key, private=private)
    if _looks_like_text(data):
        raise KeyFileError(
            "key file is text but neither PEM nor a JWK",
            hint="raw HMAC keys are read as binary bytes (decode a hex key first)",
        )
    if len(data) > _MAX_RAW_KEY:
        raise KeyFileError(f"key file of {len(data)} bytes is no supported key form")
    return SymmetricKey(secret=data)


def load_verification_key(data: bytes) -> VerificationKey:
    """A verification key from PEM/DER (public key, certificate, private key), JWK, COSE_Key or raw
    HMAC bytes. Private keys yield their public half; :class:`KeyFileError` otherwise."""
    key = _load(data, private=False)
    if isinstance(
        key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    ):
        return key.public_key()
    return key


def load_signing_key(data: bytes) -> SigningKey:
    """A signing key (for tests and the demo) from PEM/DER private key, JWK or COSE_Key with the
    private part, or raw HMAC bytes."""
    key = _load(data, private=True)
    if isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise KeyFileError("the key file holds a public key; a private key is needed to sign")
    return key
