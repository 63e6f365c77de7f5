"""Verifying COSE_Sign1 (signature) and COSE_Mac0 (MAC) messages, with their to-be-signed
structures (RFC 9052 sections 4.4 and 6.3) built from the header bytes as received.

The verify path keeps, per cached protected header, a "plan": its algorithm and the
``Sig_structure`` prefix (:data:`_SIGN1_PLANS`); ECDSA's ``r || s`` becomes DER without bignums
(:func:`_der_signature`, equal to ``encode_dss_signature``, tested).
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest import cbor
from edgetrust.attest.cose.algorithms import (
    _EC_PUBLIC_TYPES,
    _ECDSA,
    _ECDSA_SIGNATURE,
    Algorithm,
    PrivateKey,
    PublicKey,
    VerificationKey,
    _hmac,
    _mac_key,
    _signature_key,
)
from edgetrust.attest.cose.decoding import decode_mac0, decode_sign1
from edgetrust.attest.cose.messages import (
    _ALG_LABEL,
    _PROTECTED_CACHE_MAX_BYTES,
    _PROTECTED_CACHE_MAX_ENTRIES,
    Header,
    Mac0Message,
    Sign1Message,
    _cached_protected,
)
from edgetrust.errors import MalformedError, SignatureError

__all__ = ["mac_structure", "sig_structure", "verify_mac0", "verify_sign1"]


def _content(payload: bytes | None, detached_payload: bytes | None) -> bytes:
    if payload is not None and detached_payload is not None:
        raise MalformedError("the message has a payload; no detached payload expected")
    if payload is None:
        if detached_payload is None:
            raise MalformedError("the payload is detached and none was supplied")
        return detached_payload
    return payload


def _body_protected(msg: Sign1Message | Mac0Message) -> bytes:
    # RFC 9052 section 4.4 / 6.3: the received bytes, or h'' when there are no protected attributes.
    return msg.protected_bytes if msg.protected else b""


# Sig_structure up to the payload, by body_protected, for an empty external AAD:
# h'84' "Signature1" bstr(body_protected) h'40'. Same bounds as the protected-header cache.
_SIG1_PREFIXES: dict[bytes, bytes] = {}


def sig_structure(
    msg: Sign1Message, *, external_aad: bytes = b"", detached_payload: bytes | None = None
) -> bytes:
    """``Sig_structure`` for a COSE_Sign1 (RFC 9052 section 4.4), with the received header bytes."""
    content = _content(msg.payload, detached_payload)
    body = _body_protected(msg)
    # == cbor.dumps(["Signature1", body_protected, external_aad, content]), written directly
    if not external_aad:
        prefix = _SIG1_PREFIXES.get(body)
        if prefix is None:
            prefix = b"\x84\x6aSignature1" + cbor.encode_bytes(body) + b"\x40"
            if (
                len(body) <= _PROTECTED_CACHE_MAX_BYTES
                and len(_SIG1_PREFIXES) < _PROTECTED_CACHE_MAX_ENTRIES
            ):
                _SIG1_PREFIXES[body] = prefix
        return prefix + cbor.encode_bytes(content)
    return b"".join(
        (
            b"\x84\x6aSignature1",
            cbor.encode_bytes(body),
            cbor.encode_bytes(external_aad),
            cbor.encode_bytes(content),
        )
    )


def mac_structure(
    msg: Mac0Message, *, external_aad: bytes = b"", detached_payload: bytes | None = None
) -> bytes:
    """``MAC_structure`` for a COSE_Mac0 (RFC 9052 section 6.3), with the received header bytes."""
    content = _content(msg.payload, detached_payload)
    return cbor.dumps(["MAC0", _body_protected(msg), external_aad, content])


def _der_signature(raw: bytes, size: int) -> bytes:
    """The DER ``ECDSA-Sig-Value`` of the fixed-width ``r || s`` (``size`` bytes each).

    Equal to ``encode_dss_signature(r, s)`` (tested): each INTEGER minimal, with a leading zero
    byte where its top bit is set; the SEQUENCE length in short form, or 0x81 + one byte (P-521).
    """
    r = raw[:size].lstrip(b"\0")
    s = raw[size:].lstrip(b"\0")
    if not r or r[0] & 0x80:
        r = b"\0" + r
    if not s or s[0] & 0x80:
        s = b"\0" + s
    r_len, s_len = len(r), len(s)
    length = r_len + s_len + 4
    head = (
        bytes((0x30, length, 2, r_len)) if length < 128 else bytes((0x30, 0x81, length, 2, r_len))
    )
    return head + r + bytes((2, s_len)) + s


def _verify_signature(key: PublicKey, alg: Algorithm, signature: bytes, data: bytes) -> None:
    try:
        if type(key) in _EC_PUBLIC_TYPES or isinstance(key, ec.EllipticCurvePublicKey):
            size = _ECDSA[alg][2]
            if len(signature) != 2 * size:
                raise SignatureError(
                    f"{alg.name} signature must be {2 * size} bytes, got {len(signature)}"
                )
            der = _der_signature(signature, size)
            key.verify(der, data, _ECDSA_SIGNATURE[alg])  # type: ignore[call-arg]
        else:
            key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError(f"{alg.name} signature does not verify with the given key") from None


def verify_sign1(
    data_or_msg: bytes | Sign1Message,
    key: VerificationKey | PrivateKey,
    *,
    external_aad: bytes = b"",
    detached_payload: bytes | None = None,
    require_tag: bool = False,
    outer_tags: tuple[int, ...] = (),
) -> Sign1Message:
    """Verify a COSE_Sign1 with ``key``; return the message or raise.

    Raises :class:`MalformedError`/:class:`CBORError` (structure), :class:`AlgorithmError`
    (missing, unknown or key-incompatible algorithm) or :class:`SignatureError`.
    """
    msg = (
        data_or_msg
        if isinstance(data_or_msg, Sign1Message)
        else decode_sign1(data_or_msg, require_tag=require_tag, outer_tags=outer_tags)
    )
    plan = _SIGN1_PLANS.get(msg.protected_bytes)
    payload = msg.payload
    if (
        plan is not None
        and plan[0] is msg.protected
        and type(payload) is bytes
        and not external_aad
        and detached_payload is None
    ):
        # the common case: a cached protected header that names the algorithm (see _plan)
        alg = plan[1]
        to_be_signed = plan[2] + cbor.encode_bytes(payload)
    else:
        alg = msg.alg
        to_be_signed = sig_structure(
            msg, external_aad=external_aad, detached_payload=detached_payload
        )
        _plan(msg, alg)
    public_key = _signature_key(key, alg)
    _verify_signature(public_key, alg, msg.signature, to_be_signed)
    return msg


# protected header bytes -> (the cached decoded header, its algorithm, the Sig_structure prefix
# for an empty external AAD). Kept only for headers in _PROTECTED_CACHE that carry ``alg``
# themselves: then the algorithm depends on those bytes alone (a protected ``alg`` wins, and a
# decoded message cannot also carry it unprotected), and ``plan[0] is msg.protected`` proves the
# message's header is that cached one.
_SIGN1_PLANS: dict[bytes, tuple[Header, Algorithm, bytes]] = {}


def _plan(msg: Sign1Message, alg: Algorithm) -> None:
    protected_bytes = msg.protected_bytes
    if (
        _cached_protected(protected_bytes) is msg.protected
        and _ALG_LABEL in msg.protected
        and len(_SIGN1_PLANS) < _PROTECTED_CACHE_MAX_ENTRIES
    ):
        body = protected_bytes if msg.protected else b""
        prefix = b"\x84\x6aSignature1" + cbor.encode_bytes(body) + b"\x40"
        _SIGN1_PLANS[protected_bytes] = (msg.protected, alg, prefix)


def verify_mac0(
    data_or_msg: bytes | Mac0Message,
    key: VerificationKey | PrivateKey,
    *,
    external_aad: bytes = b"",
    detached_payload: bytes | None = None,
    require_tag: bool = False,
    outer_tags: tuple[int, ...] = (),
) -> Mac0Message:
    """Verify a COSE_Mac0 with the symmetric ``key``; return the message or raise."""
    msg = (
        data_or_msg
        if isinstance(data_or_msg, Mac0Message)
        else decode_mac0(data_or_msg, require_tag=require_tag, outer_tags=outer_tags)
    )
    alg = msg.alg
    secret = _mac_key(key, alg)
    to_be_maced = mac_structure(msg, external_aad=external_aad, detached_payload=detached_payload)
    if not hmac.compare_digest(_hmac(secret, alg, to_be_maced), msg.tag):
        raise SignatureError(f"{alg.name} tag does not verify with the given key")
    return msg
