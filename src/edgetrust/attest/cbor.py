"""Strict CBOR (RFC 8949) at every boundary of edgetrust.

This is the only module that imports :mod:`cbor2`. Everything that decodes CBOR from outside goes
through :func:`loads`, which applies the rules cbor2 leaves lenient by default:

* exactly one data item: trailing bytes are an error (cbor2's ``loads`` silently ignores them);
* no duplicate map keys (cbor2 keeps the last one by default);
* no indefinite-length strings, arrays or maps;
* bounded nesting depth (tags count as a level) and bounded input size;
* no semantic interpretation of tags: every tag, including the ones cbor2 would turn into a
  ``datetime``, a ``set``, a shared (possibly cyclic) reference or a big integer, comes back as a
  plain :class:`Tag`, so that the schema layer decides what a tag means;
* the top-level item has the type the caller expects.

All failures are :class:`~edgetrust.errors.CBORError` or :class:`~edgetrust.errors.OversizeError`;
no cbor2 exception leaves this module.

Decoded values use the plain CBOR data model: ``int``, ``bytes``, ``str``, ``list`` (or ``tuple``
inside tags and map keys), ``dict`` (or :data:`FrozenMap` inside tags and map keys), ``bool``,
``None``, ``float``, :class:`Tag`, and cbor2's simple / undefined values. Use :func:`is_map` and
:func:`is_array` rather than ``isinstance(x, dict)`` to accept both forms.

:func:`dumps` writes RFC 8949 section 4.2.1 core deterministic encoding: preferred (shortest)
serialization, definite lengths, map keys sorted by the bytewise order of their encodings.
(cbor2's ``canonical=True`` sorts keys length-first, the older RFC 7049 rule, so this module
writes the containers itself and leaves only the scalars to cbor2.)
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Mapping
from typing import Any, Final

import cbor2

from edgetrust.errors import CBORError, OversizeError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "FrozenMap",
    "Tag",
    "dumps",
    "encode_bytes",
    "is_array",
    "is_map",
    "loads",
]

#: A CBOR tag with its content: ``Tag(18, [...])``; ``.tag`` and ``.value``.
Tag = cbor2.CBORTag
#: The immutable map type cbor2 uses for maps inside tags and for map keys.
FrozenMap = cbor2.frozendict

#: Default bound on the encoded size of one input (64 KiB).
DEFAULT_MAX_SIZE: Final = 64 * 1024
#: Default bound on container nesting (arrays, maps and tags each count as one level).
DEFAULT_MAX_DEPTH: Final = 16

_MAP_TYPES: Final = (dict, cbor2.frozendict)
_ARRAY_TYPES: Final = (list, tuple)

# The tags cbor2 6 interprets by default (datetimes, bignums, decimal fractions, string references,
# shared values, rationals, regexps, MIME, UUIDs, IP addresses, dates, sets, self-describe).
# Each one is mapped back to a plain Tag: no cycles, no surprising Python types.
_INTERPRETED_TAGS: Final = (
    0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 55799,
)  # fmt: skip


def _keep_tag(number: int) -> Any:
    def keep(value: Any, immutable: bool) -> Tag:
        return Tag(number, value)

    return keep


_SEMANTIC_DECODERS: Final = {number: _keep_tag(number) for number in _INTERPRETED_TAGS}

# What cbor2 (or the Python runtime under it) may raise on hostile input.
_DECODE_FAILURES: Final = (
    cbor2.CBORError,
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
    UnicodeDecodeError,
    EOFError,
    LookupError,
    MemoryError,
)


def is_map(value: object) -> bool:
    """True for a decoded CBOR map (``dict`` or cbor2's frozen map)."""
    return isinstance(value, _MAP_TYPES)


def is_array(value: object) -> bool:
    """True for a decoded CBOR array (``list`` or ``tuple``)."""
    return isinstance(value, _ARRAY_TYPES)


def _type_name(expect: type | tuple[type, ...]) -> str:
    kinds = expect if isinstance(expect, tuple) else (expect,)
    names = {dict: "map", list: "array", bytes: "byte string", str: "text string", int: "integer"}
    return " or ".join(names.get(k, "tag" if k is Tag else k.__name__) for k in kinds)


_WIDENED: dict[Any, tuple[type, ...]] = {}


def _widen(expect: type | tuple[type, ...]) -> tuple[type, ...]:
    widened = _WIDENED.get(expect)
    if widened is None:
        kinds = expect if isinstance(expect, tuple) else (expect,)
        out: list[type] = []
        for kind in kinds:
            out.append(kind)
            if kind is dict:
                out.append(cbor2.frozendict)
            elif kind is list:
                out.append(tuple)
        widened = _WIDENED[expect] = tuple(out)
    return widened


class _Readers(threading.local):
    """Per thread, per depth bound: a stream and a strict cbor2 decoder reading from it.

    Building a cbor2 decoder costs about as much as decoding a small token, so each thread keeps
    its readers and points a reader's stream at the next input (``BytesIO.__init__`` may be
    called again: it resets the stream). A reader is taken out of ``free`` while it decodes and
    put back only after a decode that succeeded: one that raised is dropped, and a re-entrant
    call finds no free reader and builds its own, so no state can leak from one input into the
    next.
    """

    def __init__(self) -> None:
        self.free: dict[int, tuple[io.BytesIO, Any]] = {}


_READERS: Final = _Readers()
_reset_stream: Final = io.BytesIO.__init__
_MAX_FREE_READERS: Final = 4  # distinct depth bounds kept per thread


def _new_reader(max_depth: int) -> tuple[io.BytesIO, Any]:
    stream = io.BytesIO()
    decoder = cbor2.CBORDecoder(
        stream,
        max_depth=max_depth,
        allow_indefinite=False,
        allow_duplicate_keys=False,
        semantic_decoders=_SEMANTIC_DECODERS,
    )
    return stream, decoder


def loads(
    data: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    expect: type | tuple[type, ...] | None = None,
) -> Any:
    """Decode exactly one CBOR data item from ``data``, strictly.

    ``expect`` names the acceptable top-level Python type(s): ``dict`` (a map), ``list`` (an
    array), ``bytes``, ``str``, ``int`` or :class:`Tag`. ``bool`` never passes as ``int``.

    Raises :class:`OversizeError` when ``data`` is longer than ``max_size`` and :class:`CBORError`
    for anything else that is not a single well-formed item under the strict rules.
    """
    if type(data) is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
        raise CBORError(f"expected bytes to decode, got {type(data).__name__}")
    size = len(data)
    if size > max_size:
        raise OversizeError(f"CBOR input of {size} bytes exceeds the limit of {max_size}")
    if not size:
        raise CBORError("empty input: expected one CBOR data item")
    free = _READERS.free
    try:
        reader = free.pop(max_depth, None)
        if reader is None:
            reader = _new_reader(max_depth)
            if len(free) >= _MAX_FREE_READERS:
                free.clear()
        stream, decoder = reader
        _reset_stream(stream, data)
        value = decoder.decode()
    except _DECODE_FAILURES as e:
        raise CBORError(f"invalid CBOR: {e}") from e
    consumed = stream.tell()
    free[max_depth] = reader  # reached only after a successful decode
    # cbor2 leaves the stream right after the item it decoded (it seeks back over read-ahead).
    if consumed != size:
        raise CBORError(f"{size - consumed} trailing byte(s) after the CBOR data item")
    if expect is not None and type(value) is not expect:  # (exactly the expected type: accepted)
        kinds = _WIDENED.get(expect) or _widen(expect)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise CBORError(
                f"expected a CBOR {_type_name(expect)} at top level, got {_describe(value)}"
            )
    return value


def _describe(value: object) -> str:
    if is_map(value):
        return "a map"
    if is_array(value):
        return "an array"
    if isinstance(value, Tag):
        return f"tag {value.tag}"
    return {bytes: "a byte string", str: "a text string", bool: "a boolean", int: "an integer"}.get(
        type(value), type(value).__name__
    )


def _head(major: int, argument: int) -> bytes:
    """The initial byte(s) of a data item, in preferred (shortest) form."""
    if argument < 24:
        return bytes((major << 5 | argument,))
    if argument < 256:  # the common case: one length byte
        return bytes((major << 5 | 24, argument))
    for additional, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * width):
            return bytes([major << 5 | additional]) + argument.to_bytes(width, "big")
    raise CBORError(f"length or tag number {argument} does not fit in a CBOR head")


def _encode(obj: object) -> bytes:
    if isinstance(obj, Mapping):
        pairs = sorted((_encode(k), _encode(v)) for k, v in obj.items())
        for (a, _), (b, _) in itertools.pairwise(pairs):
            if a == b:
                raise CBORError("map has two keys with the same encoding")
        return _head(5, len(pairs)) + b"".join(k + v for k, v in pairs)
    if isinstance(obj, (list, tuple)):
        return _head(4, len(obj)) + b"".join(_encode(item) for item in obj)
    if isinstance(obj, Tag):
        return _head(6, obj.tag) + _encode(obj.value)
    if isinstance(obj, bytes):
        return _head(2, len(obj)) + obj
    if isinstance(obj, str):
        encoded = obj.encode("utf-8")
        return _head(3, len(encoded)) + encoded
    if isinstance(obj, int) and not isinstance(obj, bool) and -(2**64) <= obj < 2**64:
        return _head(0, obj) if obj >= 0 else _head(1, -1 - obj)
    if isinstance(obj, (int, float, bool)) or obj is None:
        return bytes(cbor2.dumps(obj, canonical=True))
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(cbor2.dumps(bytes(obj), canonical=True))
    raise CBORError(f"cannot encode a {type(obj).__name__} as CBOR")


def encode_bytes(data: bytes) -> bytes:
    """The deterministic encoding of one byte string (head + bytes)."""
    length = len(data)
    if length < 24:  # the heads of the common lengths, inline (Sig_structure of every verify)
        return bytes((0x40 | length,)) + data
    if length < 256:
        return bytes((0x58, length)) + data
    if length < 65536:
        return bytes((0x59, length >> 8, length & 0xFF)) + data
    return _head(2, length) + data


def dumps(obj: object) -> bytes:
    """Encode ``obj`` with RFC 8949 core deterministic encoding (section 4.2.1).

    Accepts the plain data model only: maps, arrays (list/tuple), byte and text strings, integers,
    floats, booleans, ``None`` and :class:`Tag`. Raises :class:`CBORError` for anything else.
    """
    try:
        return _encode(obj)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as e:
        raise CBORError(f"cannot encode as CBOR: {e}") from e
