"""Producing COSE_Sign1 (:func:`sign1`, deterministic ECDSA per RFC 6979, so that generated
vectors are reproducible) and COSE_Mac0 (:func:`mac0`) messages.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from edgetrust.attest import cbor
from edgetrust.attest.cose.algorithms import (
    _ECDSA,
    Algorithm,
    PrivateKey,
    SymmetricKey,
    _as_algorithm,
    _hmac,
    _key_kind,
    _mac_key,
    _signature_key,
    default_algorithm,
)
from edgetrust.attest.cose.messages import COSE_MAC0_TAG, COSE_SIGN1_TAG, Header, HeaderLabel
from edgetrust.errors import AlgorithmError, MalformedError

__all__ = ["mac0", "sign1"]


def _encode_headers(
    alg: Algorithm, kid: bytes | None, protected: Header | None, unprotected: Header | None
) -> tuple[bytes, dict[int | str, Any]]:
    protected_map: dict[int | str, Any] = {int(HeaderLabel.ALG): int(alg)}
    protected_map.update(protected or {})
    unprotected_map: dict[int | str, Any] = dict(unprotected or {})
    if kid is not None:
        unprotected_map[int(HeaderLabel.KID)] = kid
    if set(protected_map) & set(unprotected_map):
        raise MalformedError("a header parameter cannot be both protected and unprotected")
    return cbor.dumps(protected_map), unprotected_map


def _assemble(tag: int, fields: list[Any], *, tagged: bool) -> bytes:
    return cbor.dumps(cbor.Tag(tag, fields) if tagged else fields)


def sign1(
    payload: bytes,
    key: PrivateKey,
    *,
    alg: Algorithm | None = None,
    kid: bytes | None = None,
    protected: Header | None = None,
    unprotected: Header | None = None,
    external_aad: bytes = b"",
    tagged: bool = True,
) -> bytes:
    """Produce a COSE_Sign1 over ``payload``; ``alg`` defaults to the key's algorithm.

    ``alg`` goes in the protected header, ``kid`` in the unprotected one. ECDSA is deterministic.
    """
    alg = default_algorithm(key) if alg is None else _as_algorithm(alg)
    _signature_key(key, alg)
    protected_bytes, unprotected_map = _encode_headers(alg, kid, protected, unprotected)
    to_be_signed = cbor.dumps(["Signature1", protected_bytes, external_aad, payload])
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _, hash_cls, size = _ECDSA[alg]
        der = key.sign(to_be_signed, ec.ECDSA(hash_cls(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        signature = key.sign(to_be_signed)
    else:
        raise AlgorithmError(f"cannot sign with {_key_kind(key)}")
    fields = [protected_bytes, unprotected_map, payload, signature]
    return _assemble(COSE_SIGN1_TAG, fields, tagged=tagged)


def mac0(
    payload: bytes,
    key: SymmetricKey,
    *,
    alg: Algorithm = Algorithm.HMAC_256_256,
    kid: bytes | None = None,
    protected: Header | None = None,
    unprotected: Header | None = None,
    external_aad: bytes = b"",
    tagged: bool = True,
) -> bytes:
    """Produce a COSE_Mac0 over ``payload`` with an HMAC algorithm (protected ``alg``)."""
    alg = _as_algorithm(alg)
    secret = _mac_key(key, alg)
    protected_bytes, unprotected_map = _encode_headers(alg, kid, protected, unprotected)
    to_be_maced = cbor.dumps(["MAC0", protected_bytes, external_aad, payload])
    tag = _hmac(secret, alg, to_be_maced)
    return _assemble(COSE_MAC0_TAG, [protected_bytes, unprotected_map, payload, tag], tagged=tagged)
