"""EAT tokens: producing (:func:`make_eat`), decoding (:func:`decode_eat`) and verifying
(:func:`verify_eat`) a CWT claims-set in a COSE_Sign1 or COSE_Mac0, nonce and freshness included.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Final

from edgetrust.attest import cbor, cose
from edgetrust.attest.cose import Mac0Message, Sign1Message
from edgetrust.attest.eat.decoding import _decode_claims, decode_claims
from edgetrust.attest.eat.model import EatClaims, encode_claims
from edgetrust.attest.eat.vocabulary import CWT_TAG
from edgetrust.errors import ClaimError, FreshnessError, NonceError

__all__ = ["decode_eat", "make_eat", "verify_eat"]


def make_eat(
    claims: EatClaims,
    signing_key: cose.SigningKey,
    *,
    alg: cose.Algorithm | None = None,
    kid: bytes | None = None,
    cwt_tag: bool = False,
) -> bytes:
    """A signed EAT: COSE_Sign1 (tag 18) for a private key, COSE_Mac0 (tag 17) for an HMAC key.

    With ``cwt_tag`` the message is also wrapped in the CWT tag 61.
    """
    payload = encode_claims(claims)
    if isinstance(signing_key, cose.SymmetricKey):
        token = cose.mac0(
            payload, signing_key, alg=alg or cose.Algorithm.HMAC_256_256, kid=kid, tagged=True
        )
    else:
        token = cose.sign1(payload, signing_key, alg=alg, kid=kid, tagged=True)
    if cwt_tag:
        return cbor.dumps(cbor.Tag(CWT_TAG, cbor.loads(token)))
    return token


_CWT_TAGS: Final = (CWT_TAG,)


def _message(token: bytes, max_size: int) -> Sign1Message | Mac0Message:
    # tagged: Sign1 (18) or Mac0 (17); untagged: read as a Sign1
    msg = cose.decode_message(token, outer_tags=_CWT_TAGS, untagged_as="sign1", max_size=max_size)
    if msg.payload is None:
        raise ClaimError("the EAT has a detached payload")
    return msg


def _claims(msg: Sign1Message | Mac0Message, max_size: int) -> EatClaims:
    return decode_claims(cbor.loads(msg.payload or b"", max_size=max_size, expect=dict))


def decode_eat(
    token: bytes, *, max_size: int = cbor.DEFAULT_MAX_SIZE
) -> tuple[Sign1Message | Mac0Message, EatClaims]:
    """Decode (do not verify) an EAT: the COSE message and its typed claims.

    Tagged tokens may be COSE_Sign1 (18) or COSE_Mac0 (17), optionally inside the CWT tag 61;
    an untagged token is read as a COSE_Sign1.

    Unlike :func:`verify_eat`, this builds the claims' derived objects (the ``cnf`` key, with
    the validation of its point, and the measurements) at once, so that its callers (appraisal,
    the CLI, the verifier service) meet every claim error here, in their handling of bad
    evidence.
    """
    msg = _message(token, max_size)
    return msg, _claims(msg, max_size)


def _check_time(
    claims: EatClaims, now: datetime | None, max_age: timedelta | None, leeway: timedelta
) -> None:
    if now is None:
        if claims.exp is not None or claims.nbf is not None or max_age is not None:
            raise FreshnessError("the token has exp/nbf (or max_age is set) but no time was given")
        return
    at = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    slack = leeway.total_seconds()
    # RFC 8392 section 3.1.4-3.1.6 (the RFC 7519 processing rules).
    if claims.exp is not None and at >= claims.exp + slack:
        raise FreshnessError(f"the token expired at {_iso(claims.exp)}")
    if claims.nbf is not None and at + slack < claims.nbf:
        raise FreshnessError(f"the token is not valid before {_iso(claims.nbf)}")
    if claims.iat is not None and claims.iat > at + slack:
        raise FreshnessError(f"the token was issued in the future ({_iso(claims.iat)})")
    if max_age is not None:
        if claims.iat is None:
            raise FreshnessError("the token has no iat, so its age cannot be checked")
        if at - claims.iat > max_age.total_seconds() + slack:
            raise FreshnessError(f"the token was issued at {_iso(claims.iat)}, over {max_age} ago")


def _iso(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return str(timestamp)


def verify_eat(
    token: bytes,
    key: cose.VerificationKey | cose.PrivateKey,
    *,
    expected_nonce: bytes | None = None,
    now: datetime | None = None,
    max_age: timedelta | None = None,
    leeway: timedelta = timedelta(0),
    external_aad: bytes = b"",
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> EatClaims:
    """Verify an EAT and return its claims, or raise an :class:`EvidenceError` subclass.

    Order: structure, signature/MAC (with ``key``, algorithm bound to the key), claim types, nonce
    (``expected_nonce`` must equal one of the token's nonces), then time: ``exp``/``nbf``/``iat``
    against ``now`` and ``iat`` against ``max_age``. ``now`` is a parameter (pure core); without it
    a token carrying ``exp``/``nbf`` or a ``max_age`` request fails closed with FreshnessError.

    Every claim is type-checked here, ``cnf`` included, but two derived objects are built on first
    read: the Measurement objects of the device profile (from maps already validated here) and
    the cryptography key of a ``cnf`` EC2 COSE_Key, whose point (on the curve, coordinates in
    range) is validated when it is built: reading :attr:`EatClaims.cnf_key` of a token whose
    point is invalid raises the :class:`ClaimError` that :func:`decode_claims` raises at once.
    """
    msg = cose.decode_message(
        token, outer_tags=_CWT_TAGS, untagged_as="sign1", max_size=max_size
    )  # as _message
    payload = msg.payload
    if payload is None:
        raise ClaimError("the EAT has a detached payload")
    if type(msg) is Sign1Message:
        cose.verify_sign1(msg, key, external_aad=external_aad)
    else:
        cose.verify_mac0(msg, key, external_aad=external_aad)  # type: ignore[arg-type]
    claims = _decode_claims(cbor.loads(payload, max_size=max_size, expect=dict), 0)
    if expected_nonce is not None:
        nonces = claims.nonces()
        if not nonces:
            raise NonceError("the token carries no nonce")
        if not any(hmac.compare_digest(n, expected_nonce) for n in nonces):
            raise NonceError("the token's nonce does not match the expected nonce")
    _check_time(claims, now, max_age, leeway)
    return claims
