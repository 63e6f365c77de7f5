"""COSE algorithms (RFC 9053) and the keys they bind to: which key verifies or signs with which
algorithm (type and curve, no algorithm confusion), and the HMAC computation.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from edgetrust.errors import AlgorithmError, KeyFileError

__all__ = [
    "MIN_HMAC_KEY_BYTES",
    "Algorithm",
    "PrivateKey",
    "PublicKey",
    "SigningKey",
    "SymmetricKey",
    "VerificationKey",
    "default_algorithm",
]

#: Shortest HMAC key accepted, in bytes.
MIN_HMAC_KEY_BYTES: Final = 16


class Algorithm(IntEnum):
    """COSE algorithm identifiers supported here (IANA COSE Algorithms registry)."""

    ES256 = -7
    ES384 = -35
    ES512 = -36
    EdDSA = -8
    HMAC_256_64 = 4
    HMAC_256_256 = 5
    HMAC_384_384 = 6
    HMAC_512_512 = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class SymmetricKey:
    """A secret key for the HMAC algorithms (never printed)."""

    secret: bytes = field(repr=False)
    kid: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_HMAC_KEY_BYTES:
            raise KeyFileError(f"an HMAC key must be at least {MIN_HMAC_KEY_BYTES} bytes")


PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
PrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
VerificationKey: TypeAlias = PublicKey | SymmetricKey
SigningKey: TypeAlias = PrivateKey | SymmetricKey

# alg -> (curve name, hash, coordinate size in bytes)
_ECDSA: Final[dict[Algorithm, tuple[str, type[hashes.HashAlgorithm], int]]] = {
    Algorithm.ES256: ("secp256r1", hashes.SHA256, 32),
    Algorithm.ES384: ("secp384r1", hashes.SHA384, 48),
    Algorithm.ES512: ("secp521r1", hashes.SHA512, 66),
}
# alg -> (hash, tag length in bytes)
_HMAC: Final[dict[Algorithm, tuple[str, int]]] = {
    Algorithm.HMAC_256_64: ("sha256", 8),
    Algorithm.HMAC_256_256: ("sha256", 32),
    Algorithm.HMAC_384_384: ("sha384", 48),
    Algorithm.HMAC_512_512: ("sha512", 64),
}
_CURVE_ALG: Final = {"secp256r1": Algorithm.ES256, "secp384r1": Algorithm.ES384}
_CURVE_ALG_ALL: Final = {**_CURVE_ALG, "secp521r1": Algorithm.ES512}
# alg value -> Algorithm (a dict lookup is ~10x cheaper than the enum call on the verify path)
_ALGORITHMS: Final[dict[int, Algorithm]] = {a.value: a for a in Algorithm}
#: ``_ALGORITHMS.get``: the Algorithm of an ``alg`` value, or None.
# (Bound once for the other modules: in CPython 3.11 a method call on an imported name
# compiles to LOAD_ATTR, which builds a bound method on every call, not LOAD_METHOD.)
_algorithm_of: Final = _ALGORITHMS.get
# alg -> the (stateless) cryptography signature algorithm object, built once
_ECDSA_SIGNATURE: Final = {alg: ec.ECDSA(hash_cls()) for alg, (_, hash_cls, _) in _ECDSA.items()}


def _public(key: object) -> object:
    if isinstance(
        key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    ):
        return key.public_key()
    return key


# Concrete classes whose instances passed ``isinstance(key, ec.EllipticCurvePublicKey)``
# (cryptography registers its native key classes with the ABCs, and the ABC check is slow): the
# verify path asks ``type(key) in`` this set first. Only grows by classes, so it stays tiny.
_EC_PUBLIC_TYPES: set[type] = set()


def _signature_key(key: object, alg: Algorithm) -> PublicKey:
    """The public key to verify ``alg`` with, or :class:`AlgorithmError` if they do not match."""
    if type(key) in _EC_PUBLIC_TYPES:
        ecdsa = _ECDSA.get(alg)
        if ecdsa is not None and key.curve.name == ecdsa[0]:  # type: ignore[attr-defined]
            return key  # type: ignore[return-value]
    key = _public(key)
    if alg in _HMAC:
        raise AlgorithmError(f"{alg.name} is a MAC algorithm, not a signature algorithm")
    if isinstance(key, SymmetricKey):
        raise AlgorithmError(f"{alg.name} needs a public key, got a symmetric (HMAC) key")
    if alg in _ECDSA:
        curve = _ECDSA[alg][0]
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise AlgorithmError(f"{alg.name} needs an EC key on {curve}, got {_key_kind(key)}")
        if key.curve.name != curve:
            raise AlgorithmError(f"{alg.name} needs an EC key on {curve}, got {key.curve.name}")
        _EC_PUBLIC_TYPES.add(type(key))
        return key
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return key
    raise AlgorithmError(f"{alg.name} needs an Ed25519 or Ed448 key, got {_key_kind(key)}")


def _mac_key(key: object, alg: Algorithm) -> SymmetricKey:
    if alg not in _HMAC:
        raise AlgorithmError(f"{alg.name} is not a MAC algorithm")
    if not isinstance(key, SymmetricKey):
        raise AlgorithmError(f"{alg.name} needs a symmetric (HMAC) key, got {_key_kind(key)}")
    return key


def _key_kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(key, ed448.Ed448PublicKey):
        return "an Ed448 key"
    if isinstance(key, SymmetricKey):
        return "a symmetric key"
    return f"a {type(key).__name__}"


def default_algorithm(key: SigningKey | VerificationKey) -> Algorithm:
    """The one algorithm a key is used with here (HMAC keys default to HMAC 256/256)."""
    key_ = _public(key)
    if isinstance(key_, SymmetricKey):
        return Algorithm.HMAC_256_256
    if isinstance(key_, ec.EllipticCurvePublicKey):
        alg = _CURVE_ALG_ALL.get(key_.curve.name)
        if alg is None:
            raise AlgorithmError(f"no COSE algorithm for EC curve {key_.curve.name}")
        return alg
    if isinstance(key_, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return Algorithm.EdDSA
    raise AlgorithmError(f"unsupported key type {_key_kind(key_)}")


def _as_algorithm(alg: int) -> Algorithm:
    try:
        return Algorithm(alg)
    except ValueError:
        raise AlgorithmError(f"unknown or unsupported algorithm {alg}") from None


def _hmac(key: SymmetricKey, alg: Algorithm, data: bytes) -> bytes:
    digest, length = _HMAC[alg]
    return hmac.new(key.secret, data, digest).digest()[:length]
