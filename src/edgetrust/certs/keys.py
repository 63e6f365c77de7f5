"""Key types of the certs package: which keys we sign with, how, and how a signature is checked.

* Signing keys (CA, DeviceID, alias keys): ECDSA P-256 (the default: cryptography's path validator
  and gRPC's TLS accept it), P-384, and Ed25519 (Open DICE's default; verified by our own chain
  code because cryptography's validator refuses it).
* Verification additionally accepts RSA public keys (a manufacturer root may be RSA).

The hash that goes with an ECDSA key follows its curve (P-256/SHA-256, P-384/SHA-384,
P-521/SHA-512), as the TCG DICE and CA/Browser profiles do.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Final, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from edgetrust.errors import AlgorithmError, KeyFileError, SignatureError

__all__ = [
    "KeyAlgorithm",
    "PrivateKey",
    "PublicKey",
    "certificate_public_key",
    "describe_key",
    "generate_private_key",
    "key_algorithm",
    "public_key_bytes",
    "public_key_fingerprint",
    "signature_hash",
    "verify_certificate_signature",
]

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


class KeyAlgorithm(enum.StrEnum):
    """The signing key types we create."""

    P256 = "p256"
    P384 = "p384"
    ED25519 = "ed25519"


_CURVES: Final[dict[KeyAlgorithm, ec.EllipticCurve]] = {
    KeyAlgorithm.P256: ec.SECP256R1(),
    KeyAlgorithm.P384: ec.SECP384R1(),
}
_CURVE_HASHES: Final[dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
_MIN_RSA_BITS: Final = 2048
_CURVE_LABELS: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def generate_private_key(algorithm: KeyAlgorithm | str = KeyAlgorithm.P256) -> PrivateKey:
    """A fresh signing key of ``algorithm`` (``p256``, ``p384`` or ``ed25519``)."""
    try:
        alg = KeyAlgorithm(algorithm)
    except ValueError as e:
        raise AlgorithmError(f"unknown key algorithm {algorithm!r}") from e
    if alg is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(_CURVES[alg])


def key_algorithm(key: PrivateKey | PublicKey) -> KeyAlgorithm:
    """The :class:`KeyAlgorithm` of a key; :class:`AlgorithmError` for anything else."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        for alg, curve in _CURVES.items():
            if key.curve.name == curve.name:
                return alg
    raise AlgorithmError(f"unsupported signing key: {describe_key(key)}")


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The hash to sign with ``key``: by curve for ECDSA, ``None`` for Ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        hash_type = _CURVE_HASHES.get(key.curve.name)
        if hash_type is not None:
            return hash_type()
    raise KeyFileError(f"cannot sign certificates with a {describe_key(key)} key")


def verify_certificate_signature(certificate: x509.Certificate, key: PublicKey) -> None:
    """Check that ``key`` signed ``certificate``; :class:`SignatureError` otherwise.

    Works with a bare key (a trust anchor provisioned as a key) as well as an issuer's key. The
    signature algorithm named in the certificate must fit the key type. Keys on other curves
    than P-256/384/521, and RSA keys under 2048 bits, are an :class:`AlgorithmError`.
    """
    _check_verification_key(key)
    try:
        params = certificate.signature_algorithm_parameters
        if isinstance(key, ed25519.Ed25519PublicKey):
            if params is not None or certificate.signature_hash_algorithm is not None:
                raise SignatureError(_mismatch(certificate, key))
            key.verify(certificate.signature, certificate.tbs_certificate_bytes)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                raise SignatureError(_mismatch(certificate, key))
            key.verify(certificate.signature, certificate.tbs_certificate_bytes, params)
        elif isinstance(key, rsa.RSAPublicKey):
            hash_alg = certificate.signature_hash_algorithm
            if not isinstance(params, padding.PKCS1v15 | padding.PSS) or hash_alg is None:
                raise SignatureError(_mismatch(certificate, key))
            key.verify(certificate.signature, certificate.tbs_certificate_bytes, params, hash_alg)
        else:
            raise SignatureError(f"unsupported issuer key type {type(key).__name__}")
    except InvalidSignature as e:
        raise SignatureError(
            f"the signature of {_subject(certificate)} does not verify with {describe_key(key)}"
        ) from e
    except (UnsupportedAlgorithm, ValueError, TypeError) as e:
        raise SignatureError(
            f"the signature of {_subject(certificate)} cannot be checked: {e}"
        ) from e


def certificate_public_key(certificate: x509.Certificate) -> PublicKey:
    """The subject public key of ``certificate`` if it is a type we verify with."""
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise AlgorithmError(f"{_subject(certificate)}: unusable public key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise AlgorithmError(f"{_subject(certificate)}: unsupported key type {describe_key(key)}")
    return key


def _check_verification_key(key: PublicKey) -> None:
    """The keys we verify with: what cryptography's validator also accepts (NIST curves,
    RSA >= 2048) plus Ed25519. Anything else is refused, not tried."""
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _CURVE_HASHES:
        raise AlgorithmError(f"issuer key on curve {key.curve.name} is not accepted")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise AlgorithmError(f"issuer key RSA {key.key_size} is below {_MIN_RSA_BITS} bits")


def public_key_bytes(key: PublicKey) -> bytes:
    """Raw 32 bytes (Ed25519), uncompressed SEC1 point (EC) or DER SubjectPublicKeyInfo (RSA)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_fingerprint(key: PublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, hex (what ``openssl pkey -pubout`` hashes)."""
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def describe_key(key: object) -> str:
    """A short human name: ``EC P-256``, ``Ed25519``, ``RSA 2048``."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_LABELS.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


def _mismatch(certificate: x509.Certificate, key: PublicKey) -> str:
    oid = certificate.signature_algorithm_oid
    name = getattr(oid, "_name", None) or oid.dotted_string
    kind = describe_key(key)
    return f"{_subject(certificate)}: signature algorithm {name} does not fit a {kind} key"


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"
