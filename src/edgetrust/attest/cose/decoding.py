"""Decoding COSE_Sign1 / COSE_Mac0 messages without verifying them (strict CBOR, every field
checked, each rule with its own :class:`~edgetrust.errors.MalformedError`).
"""

from __future__ import annotations

from typing import Any, Literal

from edgetrust.attest import cbor
from edgetrust.attest.cose.envelope import _sign1_envelope
from edgetrust.attest.cose.messages import (
    _ARRAY_TYPES,
    _MAP_TYPES,
    _SIGN1_PAYLOAD,
    _SIGN1_PROTECTED,
    _SIGN1_PROTECTED_BYTES,
    _SIGN1_SIGNATURE,
    _SIGN1_TAGGED,
    _SIGN1_UNPROTECTED,
    COSE_MAC0_TAG,
    COSE_SIGN1_TAG,
    Header,
    Mac0Message,
    Sign1Message,
    _cached_protected,
    _headers,
)
from edgetrust.errors import MalformedError

__all__ = ["decode_mac0", "decode_message", "decode_sign1"]


def _unwrap(
    value: object, *, expected_tag: int, name: str, require_tag: bool, outer_tags: tuple[int, ...]
) -> tuple[Any, bool]:
    while isinstance(value, cbor.Tag) and value.tag in outer_tags:
        value = value.value
    if isinstance(value, cbor.Tag):
        if value.tag != expected_tag:
            raise MalformedError(f"expected {name} (tag {expected_tag}), got tag {value.tag}")
        return value.value, True
    if require_tag:
        raise MalformedError(f"expected a tagged {name} (tag {expected_tag})")
    return value, False


def _fields(value: Any, name: str) -> tuple[bytes, Header, Header, bytes | None, bytes]:
    if not isinstance(value, _ARRAY_TYPES) or len(value) != 4:
        raise MalformedError(f"a {name} must be an array of four elements")
    protected_bytes: Any = value[0]
    unprotected: Any = value[1]
    payload: Any = value[2]
    last: Any = value[3]
    protected, unprotected_map = _headers(protected_bytes, unprotected)
    if payload is not None and not isinstance(payload, bytes):
        raise MalformedError(f"the {name} payload must be a byte string or nil")
    if not isinstance(last, bytes):
        raise MalformedError(f"the {name} signature/tag must be a byte string")
    return protected_bytes, protected, unprotected_map, payload, last


def decode_sign1(
    data: bytes,
    *,
    require_tag: bool = False,
    outer_tags: tuple[int, ...] = (),
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> Sign1Message:
    """Decode a COSE_Sign1 (tagged 18 or, unless ``require_tag``, untagged) without verifying it.

    ``outer_tags`` are tags allowed around the COSE tag (e.g. 61, the CWT tag of RFC 8392).
    """
    if type(data) is bytes and len(data) <= max_size:
        msg = _sign1_envelope(data)
        if msg is not None:
            return msg
    value = cbor.loads(data, max_size=max_size)
    return _sign1_from_value(value, require_tag=require_tag, outer_tags=outer_tags)


def _sign1_from_value(
    value: object, *, require_tag: bool, outer_tags: tuple[int, ...]
) -> Sign1Message:
    inner, tagged = _unwrap(
        value,
        expected_tag=COSE_SIGN1_TAG,
        name="COSE_Sign1",
        require_tag=require_tag,
        outer_tags=outer_tags,
    )
    return _sign1(inner, tagged)


def _sign1(fields: Any, tagged: bool) -> Sign1Message:
    protected: Header | None = None
    if (type(fields) is tuple or type(fields) is list) and len(fields) == 4:
        # the common case, checked inline: an already seen protected header, no unprotected one
        protected_bytes, unprotected, payload, signature = fields
        if (
            type(protected_bytes) is bytes
            and isinstance(unprotected, _MAP_TYPES)
            and not unprotected
            and (payload is None or type(payload) is bytes)
            and type(signature) is bytes
        ):
            protected = _cached_protected(protected_bytes)
    if protected is None:  # every other case: each rule with its own message
        protected_bytes, protected, unprotected, payload, signature = _fields(fields, "COSE_Sign1")
    # every field checked by _fields: write the frozen instance through its slots (verify path)
    msg = object.__new__(Sign1Message)
    _SIGN1_PROTECTED_BYTES(msg, protected_bytes)
    _SIGN1_PROTECTED(msg, protected)
    _SIGN1_UNPROTECTED(msg, unprotected)
    _SIGN1_PAYLOAD(msg, payload)
    _SIGN1_SIGNATURE(msg, signature)
    _SIGN1_TAGGED(msg, tagged)
    return msg


def decode_mac0(
    data: bytes,
    *,
    require_tag: bool = False,
    outer_tags: tuple[int, ...] = (),
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> Mac0Message:
    """Decode a COSE_Mac0 (tagged 17 or, unless ``require_tag``, untagged) without verifying it."""
    value = cbor.loads(data, max_size=max_size)
    return _mac0_from_value(value, require_tag=require_tag, outer_tags=outer_tags)


def _mac0_from_value(
    value: object, *, require_tag: bool, outer_tags: tuple[int, ...]
) -> Mac0Message:
    inner, tagged = _unwrap(
        value,
        expected_tag=COSE_MAC0_TAG,
        name="COSE_Mac0",
        require_tag=require_tag,
        outer_tags=outer_tags,
    )
    protected_bytes, protected, unprotected, payload, tag = _fields(inner, "COSE_Mac0")
    return Mac0Message(
        protected_bytes=protected_bytes,
        protected=protected,
        unprotected=unprotected,
        payload=payload,
        tag=tag,
        tagged=tagged,
    )


def decode_message(
    data: bytes,
    *,
    outer_tags: tuple[int, ...] = (),
    untagged_as: Literal["sign1", "mac0"] | None = None,
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> Sign1Message | Mac0Message:
    """Decode a COSE_Sign1 or COSE_Mac0, whichever its tag says (one CBOR pass).

    An untagged message is an error unless ``untagged_as`` says what the context expects.
    """
    if type(data) is bytes and len(data) <= max_size:
        msg = _sign1_envelope(data)
        if msg is not None:
            return msg
    inner = cbor.loads(data, max_size=max_size)
    while type(inner) is cbor.Tag and inner.tag in outer_tags:
        inner = inner.value
    if type(inner) is cbor.Tag:
        if inner.tag == COSE_SIGN1_TAG:
            return _sign1(inner.value, True)
        if inner.tag == COSE_MAC0_TAG:
            return _mac0_from_value(inner, require_tag=True, outer_tags=())
        raise MalformedError(f"expected COSE_Sign1 (18) or COSE_Mac0 (17), got tag {inner.tag}")
    if untagged_as == "sign1":
        return _sign1_from_value(inner, require_tag=False, outer_tags=())
    if untagged_as == "mac0":
        return _mac0_from_value(inner, require_tag=False, outer_tags=())
    raise MalformedError("expected a tagged COSE_Sign1 (18) or COSE_Mac0 (17)")
