"""The ``cnf`` claim (RFC 8747 section 3): a confirmation key or key id, decoded and checked.

A cnf COSE_Key of the common form, ``{1: 2, -1: crv, -2: x, -3: y}`` with uncompressed coordinates
of the curve's size on P-256/384/521, passes :func:`_pending_ec2_key`'s structure checks and
becomes a :class:`_PendingKey`. :func:`~edgetrust.attest.eat.verify_eat` returns it unbuilt:
building the cryptography key object (which is where the point is validated: coordinates in range
and on the curve, ~6 us) happens on the first read of ``EatClaims.cnf_key``, and an invalid point
raises there the same :class:`~edgetrust.errors.ClaimError` that ``keys.decode_cose_key`` raises.
``decode_claims`` and ``decode_eat`` build it at once, so appraisal, the CLI and the verifier
service meet that error while decoding. Every other form of cnf goes through
``keys.decode_cose_key`` at once, with its own checks and messages.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest import cbor, cose
from edgetrust.attest.cose import PublicKey
from edgetrust.attest.keys import decode_cose_key
from edgetrust.errors import ClaimError

__all__ = ["decode_cnf"]


class _PendingKey(tuple[ec.EllipticCurve, bytes]):
    """An EC2 public key whose structure was checked, not yet built (nor its point validated):
    ``(curve, 04 || x || y)``."""

    __slots__ = ()

    def resolve(self) -> PublicKey:
        curve, point = self
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError as e:  # as keys.decode_cose_key words it
            raise ClaimError(f"invalid EC2 key: {e}") from e


# COSE crv -> (curve, coordinate size)
_EC2_CURVES: Final[dict[int, tuple[ec.EllipticCurve, int]]] = {
    1: (ec.SECP256R1(), 32),
    2: (ec.SECP384R1(), 48),
    3: (ec.SECP521R1(), 66),
}


def _pending_ec2_key(content: object) -> _PendingKey | None:
    """The key if ``content`` is exactly an uncompressed EC2 COSE_Key of a supported curve."""
    if type(content) is not dict or len(content) != 4:
        return None
    try:  # four entries, all four labels: exactly the labels {1, -1, -2, -3}
        kty, crv, x, y = content[1], content[-1], content[-2], content[-3]
    except KeyError:
        return None
    if type(kty) is not int or kty != 2 or type(crv) is not int:
        return None
    curve = _EC2_CURVES.get(crv)
    if curve is None or type(x) is not bytes or type(y) is not bytes:
        return None
    if len(x) != curve[1] or len(y) != curve[1]:
        return None  # decode_cose_key rejects it, with its message
    return _PendingKey((curve[0], b"\x04" + x + y))


def decode_cnf(
    value: object, _profile: object = None, _depth: int = 0
) -> tuple[PublicKey | _PendingKey | None, bytes | None]:
    # RFC 8747 section 3: exactly one confirmation method.
    if not cbor.is_map(value) or len(value) != 1:  # type: ignore[arg-type]
        raise ClaimError("claim cnf must be a map with exactly one confirmation method")
    ((method, content),) = value.items()  # type: ignore[attr-defined]
    if method == 1:
        pending = _pending_ec2_key(content)
        if pending is not None:
            return pending, None
        # anything but a plain uncompressed EC2 key: the full COSE_Key decoder, at once
        key = decode_cose_key(content, error=ClaimError)
        if isinstance(key, cose.SymmetricKey):
            raise ClaimError("claim cnf: a symmetric COSE_Key cannot confirm a TLS key")
        return key, None  # type: ignore[return-value]
    if method == 3:
        if not isinstance(content, bytes):  # as the other byte-string claims word it
            raise ClaimError("claim cnf must be a byte string")
        return None, content
    raise ClaimError(f"claim cnf: unsupported confirmation method {method!r}")
