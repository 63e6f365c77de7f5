"""Compact JWS (RFC 7515) with ES256 (P-256) or ES384 (P-384), on ``cryptography`` directly, and
the strict base64url and JSON it is made of (the signed form of EAR, :mod:`edgetrust.attest.ear`).

The signature is raw ``r || s``; the ``alg`` header must name exactly the algorithm of the
verification key (no ``none``, no HMAC, no confusion); a ``crit`` header is refused. JSON members
may not repeat; base64url must be unpadded and canonical.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from edgetrust.errors import AlgorithmError, MalformedError, OversizeError, SignatureError

__all__ = [
    "MAX_JWS_SIZE",
    "b64url_decode",
    "b64url_encode",
    "sign_jws",
    "strict_json",
    "verify_jws",
]

#: Largest compact JWS accepted, in bytes.
MAX_JWS_SIZE: Final = 64 * 1024


# ---- base64url and strict JSON ----------------------------------------------------------------

_B64URL_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes, *, what: str = "value") -> bytes:
    """Unpadded base64url (RFC 7515 section 2), strictly: no padding, no other characters."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not set(raw) <= _B64URL_ALPHABET or len(raw) % 4 == 1:
        raise MalformedError(f"{what} is not unpadded base64url")
    try:
        decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as e:
        raise MalformedError(f"{what} is not unpadded base64url") from e
    if b64url_encode(decoded).encode("ascii") != raw:  # non-canonical trailing bits
        raise MalformedError(f"{what} is not canonical base64url")
    return decoded


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedError(f"duplicate JSON member {key!r}")
        result[key] = value
    return result


def strict_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except MalformedError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MalformedError(f"{what} is not valid JSON") from e
    if not isinstance(value, dict):
        raise MalformedError(f"{what} is not a JSON object")
    return value


# ---- JWS (ES256 / ES384) ----------------------------------------------------------------------

_CURVES: dict[str, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm, int]] = {
    "ES256": (ec.SECP256R1, hashes.SHA256(), 32),
    "ES384": (ec.SECP384R1, hashes.SHA384(), 48),
}


def _alg_for(curve: ec.EllipticCurve) -> str:
    for alg, (curve_type, _, _) in _CURVES.items():
        if isinstance(curve, curve_type):
            return alg
    raise AlgorithmError(f"no JWS algorithm for curve {curve.name}")


def sign_jws(
    payload: Mapping[str, Any], key: ec.EllipticCurvePrivateKey, *, kid: str | None = None
) -> str:
    """Sign the JSON object ``payload`` as a compact JWS (JWT): ES256 for P-256, ES384 for P-384."""
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AlgorithmError("JWS signing needs an EC P-256 or P-384 private key")
    alg = _alg_for(key.curve)
    _, hash_alg, size = _CURVES[alg]
    header: dict[str, str] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = b64url_encode(_compact(header)) + "." + b64url_encode(_compact(payload))
    der = key.sign(signing_input.encode("ascii"), ec.ECDSA(hash_alg))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return signing_input + "." + b64url_encode(signature)


def _compact(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=False).encode("utf-8")


def verify_jws(
    token: str | bytes, public_key: ec.EllipticCurvePublicKey
) -> tuple[dict[str, Any], bytes]:
    """Verify a compact JWS signed with ES256 / ES384; return its header and payload bytes."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise AlgorithmError("JWS verification needs an EC P-256 or P-384 public key")
    raw = token.encode("ascii", "replace") if isinstance(token, str) else bytes(token)
    if len(raw) > MAX_JWS_SIZE:
        raise OversizeError(f"JWS is {len(raw)} bytes, more than {MAX_JWS_SIZE}")
    parts = raw.split(b".")
    if len(parts) != 3:
        raise MalformedError("not a compact JWS (three base64url parts)")
    header = strict_json(b64url_decode(parts[0], what="JWS header"), "JWS header")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise AlgorithmError("JWS header has no alg")
    if "crit" in header:
        raise AlgorithmError("JWS header lists critical extensions we do not understand")
    expected = _alg_for(public_key.curve)
    if alg != expected:
        raise AlgorithmError(f"JWS alg {alg!r} does not match the {expected} verification key")
    _, hash_alg, size = _CURVES[alg]
    signature = b64url_decode(parts[2], what="JWS signature")
    if len(signature) != 2 * size:
        raise SignatureError(f"{alg} signature must be {2 * size} bytes, got {len(signature)}")
    der = encode_dss_signature(
        int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    )
    try:
        public_key.verify(der, parts[0] + b"." + parts[1], ec.ECDSA(hash_alg))
    except InvalidSignature:
        raise SignatureError("JWS signature does not verify with the given key") from None
    return header, b64url_decode(parts[1], what="JWS payload")
