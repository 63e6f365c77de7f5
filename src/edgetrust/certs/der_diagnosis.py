"""Why a DICE extension's DER did not decode: a walk over the bytes, for the error message only.

cryptography's declarative ASN.1 decoder (see :mod:`.dice_schema`) decides whether bytes are a
valid DER value of a schema; when they are not, it reports only a kind (``ExtraData``,
``InvalidValue``, ...) with no position. :func:`explain` runs on that failure path alone: it walks
the TLVs against a :class:`Shape` (the same ASN.1 module, as tags and kinds) and names the first
defect and where it is -- trailing bytes, an indefinite or non-minimal length, an unknown or
out-of-order field, a non-minimal INTEGER, invalid UTF-8, bad BIT STRING padding, a missing field.
If the walk finds nothing, the decoder's own reason is translated.

It never decides acceptance: a value is valid exactly when the decoder accepts it.
"""

from __future__ import annotations

import re
from typing import Final, Literal, NamedTuple

from edgetrust.errors import DiceExtensionError

__all__ = ["Field", "Shape", "explain"]

#: ``number`` is an INTEGER or an ENUMERATED (the Open DICE mode).
Kind = Literal[
    "octets", "utf8", "ia5", "integer", "number", "bits", "oid", "sequence", "explicit", "any"
]


class Field(NamedTuple):
    """One SEQUENCE component: its identifier octet (tag number < 31), name and kind.

    ``inner`` is the :class:`Shape` inside a ``sequence`` and, for an ``explicit`` field, the
    :class:`Field` it wraps (``None``: anything).
    """

    identifier: int
    name: str
    kind: Kind = "octets"
    optional: bool = True
    inner: Shape | Field | None = None


class Shape(NamedTuple):
    """The contents of a SEQUENCE: its ``fields`` in order, or (a SEQUENCE SIZE (1..MAX) OF)
    one or more elements ``of`` this shape."""

    fields: tuple[Field, ...] = ()
    of: Shape | None = None


_CLASSES: Final = {0x00: "universal", 0x40: "application", 0x80: "context", 0xC0: "private"}
_RUST_KIND: Final = re.compile(r"kind: (\w+)")
_RUST_TAG: Final = re.compile(r"value: (\d+), constructed: (\w+), class: (\w+)")
_RUST_REASONS: Final = {
    "ShortData": "truncated",
    "ExtraData": "unexpected data",
    "InvalidLength": "invalid length",
    "InvalidValue": "invalid value",
    "InvalidTag": "invalid tag",
    "IntegerOverflow": "integer too large",
    "InvalidSetOrdering": "SET OF out of order",
    "EncodedDefault": "a DEFAULT value encoded",
}


def explain(data: bytes, shape: Shape, error: ValueError) -> str:
    """The first defect of ``data`` (a SEQUENCE of ``shape``), as ``malformed DER (...)``,
    ``not DER (...)``, ``malformed value (...)`` or ``N trailing bytes ...``."""
    try:
        _root(data, shape)
    except DiceExtensionError as found:
        return found.message
    return f"malformed DER ({_rust_reason(error)})"


def _defect(text: str) -> DiceExtensionError:
    return DiceExtensionError(text)


def _root(data: bytes, shape: Shape) -> None:
    if not data:
        raise _defect("malformed DER (no data)")
    identifier, number, start, end = _header(data, 0, len(data), "")
    if end < len(data):
        raise _defect(f"{len(data) - end} trailing bytes after the DER value")
    if identifier != 0x30:
        raise _defect(f"malformed DER ({_tag_text(identifier, number)}, not a SEQUENCE)")
    _contents(data, start, end, shape, "")


def _contents(data: bytes, start: int, end: int, shape: Shape, where: str) -> None:
    if shape.of is not None:
        offset, index = start, 0
        while offset < end:
            at = f"{where}[{index}]"
            identifier, number, first, offset = _header(data, offset, end, at)
            if identifier != 0x30:
                raise _defect(f"malformed DER ({_tag_text(identifier, number)} at {at})")
            _contents(data, first, offset, shape.of, at)
            index += 1
        if not index:
            raise _defect(f"malformed DER (an empty SEQUENCE OF{' ' + where if where else ''})")
        return
    fields = shape.fields
    position, offset, previous = 0, start, ""
    while offset < end:
        identifier, number, first, last = _header(data, offset, end, where)
        for index in range(position, len(fields)):
            field = fields[index]
            if field.identifier == identifier:
                break
            if not field.optional:
                tag = _tag_text(identifier, number)
                raise _defect(f"malformed DER ({tag} instead of {_path(where, field.name)})")
        else:
            after = f" after {_path(where, previous)}" if previous else ""
            inside = f" in {where}" if where and not previous else ""
            raise _defect(f"malformed DER ({_tag_text(identifier, number)}{after}{inside})")
        _value(data, first, last, field, _path(where, field.name))
        position, offset, previous = index + 1, last, field.name
    for field in fields[position:]:
        if not field.optional:
            raise _defect(f"malformed DER (missing {_path(where, field.name)})")


def _value(data: bytes, start: int, end: int, field: Field, where: str) -> None:
    content = data[start:end]
    kind = field.kind
    if kind in {"integer", "number"}:
        if not content:
            raise _defect(f"malformed DER (empty INTEGER {where})")
        if len(content) > 1 and (
            (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)
        ):
            raise _defect(f"not DER (non-minimal INTEGER {where})")
    elif kind == "utf8":
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise _defect(f"malformed value ({where} is not valid UTF-8)") from None
    elif kind == "ia5":
        if not content.isascii():
            raise _defect(f"malformed value ({where} is not an IA5String)")
    elif kind == "bits":
        _bits(content, where)
    elif kind == "oid":
        if not content or content[-1] & 0x80:
            raise _defect(f"malformed DER (OBJECT IDENTIFIER {where})")
        if content[0] == 0x80 or any(
            byte == 0x80 and content[i - 1] < 0x80 for i, byte in enumerate(content) if i
        ):
            raise _defect(f"not DER (non-minimal OBJECT IDENTIFIER {where})")
    elif kind == "sequence" and isinstance(field.inner, Shape):
        _contents(data, start, end, field.inner, where)
    elif kind == "explicit":
        identifier, number, first, last = _header(data, start, end, where)
        if last != end:
            raise _defect(f"malformed DER ({end - last} extra bytes in {where})")
        inner = field.inner
        if isinstance(inner, Field):
            number_tag = inner.kind == "number" and identifier in {0x02, 0x0A}
            if identifier != inner.identifier and not number_tag:
                raise _defect(f"malformed DER ({_tag_text(identifier, number)} in {where})")
            _value(data, first, last, inner, where)


def _bits(content: bytes, where: str) -> None:
    if not content:
        raise _defect(f"malformed DER (empty BIT STRING {where})")
    unused = content[0]
    if unused > 7 or (len(content) == 1 and unused):
        raise _defect(f"malformed DER (BIT STRING {where} with {unused} unused bits)")
    if content[-1] & ((1 << unused) - 1):
        raise _defect(f"not DER (unused bits of BIT STRING {where} are not zero)")


def _header(data: bytes, offset: int, end: int, where: str) -> tuple[int, int, int, int]:
    """(identifier octet, tag number, first content offset, end of content) of one TLV."""
    at = f" in {where}" if where else ""
    truncated = _defect(f"malformed DER (truncated{at})")
    if offset >= end:
        raise truncated
    identifier, position = data[offset], offset + 1
    number = identifier & 0x1F
    if number == 0x1F:  # high tag number form, base 128
        number = 0
        while True:
            if position >= end or position - offset > 5:
                raise truncated
            byte = data[position]
            position += 1
            if number == 0 and byte == 0x80:
                raise _defect(f"not DER (non-minimal tag{at})")
            number = number << 7 | byte & 0x7F
            if not byte & 0x80:
                break
        if number < 0x1F:
            raise _defect(f"not DER (non-minimal tag{at})")
    if position >= end:
        raise truncated
    first = data[position]
    position += 1
    if first == 0x80:
        raise _defect(f"not DER (indefinite length{at})")
    length = first
    if first > 0x80:
        count = first & 0x7F
        if count > 4:
            raise _defect(f"malformed DER (a length of {count} octets{at})")
        if position + count > end:
            raise truncated
        length = int.from_bytes(data[position : position + count], "big")
        if data[position] == 0 or length < 0x80:
            raise _defect(f"not DER (non-minimal length{at})")
        position += count
    if length > end - position:
        left = end - position
        raise _defect(f"malformed DER (truncated{at}: {length} bytes announced, {left} left)")
    return identifier, number, position, position + length


def _tag_text(identifier: int, number: int) -> str:
    form = "constructed" if identifier & 0x20 else "primitive"
    return f"unexpected {_CLASSES[identifier & 0xC0]} tag {number} ({form})"


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _rust_reason(error: ValueError) -> str:
    text = str(error)
    tag = _RUST_TAG.search(text)
    if tag is not None:
        number, constructed, tag_class = tag.groups()
        label = {"ContextSpecific": "context"}.get(tag_class, tag_class.lower())
        form = "constructed" if constructed == "true" else "primitive"
        return f"unexpected {label} tag {number} ({form})"
    kind = _RUST_KIND.search(text)
    if kind is None:
        return " ".join(text.split())[:100] or type(error).__name__
    return _RUST_REASONS.get(kind.group(1), kind.group(1))
