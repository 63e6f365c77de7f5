"""ASN.1 schemas (pyasn1) of the TCG DICE and Open DICE certificate extensions, strict DER.

Private to :mod:`edgetrust.certs.dice_ext` and :mod:`edgetrust.certs.open_dice_ext`, which
turn these into typed values. The modules
are transcribed from the specifications, not from any implementation:

* TCG DICE Attestation Architecture, Appendix A (ASN.1 module), version 1.2::

    DiceTcbInfo ::= SEQUENCE {
        vendor     [0] IMPLICIT UTF8String OPTIONAL,
        model      [1] IMPLICIT UTF8String OPTIONAL,
        version    [2] IMPLICIT UTF8String OPTIONAL,
        svn        [3] IMPLICIT INTEGER OPTIONAL,
        layer      [4] IMPLICIT INTEGER OPTIONAL,
        index      [5] IMPLICIT INTEGER OPTIONAL,
        fwids      [6] IMPLICIT FWIDLIST OPTIONAL,
        flags      [7] IMPLICIT OperationalFlags OPTIONAL,
        vendorInfo [8] IMPLICIT OCTET STRING OPTIONAL,
        type       [9] IMPLICIT OCTET STRING OPTIONAL,
        flagsMask  [10] IMPLICIT OperationalFlagsMask OPTIONAL,
        integrityRegisters [11] IMPLICIT IrList OPTIONAL }
    FWIDLIST ::= SEQUENCE SIZE (1..MAX) OF FWID
    FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }
    IrList ::= SEQUENCE SIZE (1..MAX) OF IntegrityRegister
    IntegrityRegister ::= SEQUENCE {
        registerName IA5String OPTIONAL,
        registerNum INTEGER OPTIONAL,
        registerDigests FWIDLIST }
    DiceTcbInfoSeq ::= SEQUENCE SIZE (1..MAX) OF DiceTcbInfo      -- tcg-dice-MultiTcbInfo
    TcgUeid ::= SEQUENCE { ueid OCTET STRING }                      -- tcg-dice-Ueid

* Open Profile for DICE, "Custom Extension Format"::

    Mode ::= INTEGER (0..3)
    OpenDiceInput ::= SEQUENCE {
        codeHash                [0] EXPLICIT OCTET STRING OPTIONAL,
        codeDescriptor          [1] EXPLICIT OCTET STRING OPTIONAL,
        configurationHash       [2] EXPLICIT OCTET STRING OPTIONAL,
        configurationDescriptor [3] EXPLICIT OCTET STRING OPTIONAL,
        authorityHash           [4] EXPLICIT OCTET STRING OPTIONAL,
        authorityDescriptor     [5] EXPLICIT OCTET STRING OPTIONAL,
        mode                    [6] EXPLICIT Mode OPTIONAL,
        profileName             [7] EXPLICIT UTF8String OPTIONAL }

  The specification text says ``Mode ::= INTEGER`` but the reference implementation (and so
  its known-answer certificate) encodes the mode as ENUMERATED; :class:`_Mode` accepts both.
"""

# pyasn1 schemas must use pyasn1's attribute names (componentType, subtypeSpec).
# ruff: noqa: N815

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, TypeVar

from cryptography import x509
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, constraint, namedtype, tag, univ

from edgetrust.errors import DiceExtensionError

# pyasn1's "no upper bound" for SIZE (1..MAX).
_MAX = float("inf")


def _implicit(number: int, *, constructed: bool = False) -> tag.Tag:
    form = tag.tagFormatConstructed if constructed else tag.tagFormatSimple
    return tag.Tag(tag.tagClassContext, form, number)


def _explicit(number: int) -> tag.Tag:
    return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, number)


class FwidSchema(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("hashAlg", univ.ObjectIdentifier()),
        namedtype.NamedType("digest", univ.OctetString()),
    )


class FwidListSchema(univ.SequenceOf):  # type: ignore[misc]
    componentType = FwidSchema()
    subtypeSpec = constraint.ValueSizeConstraint(1, _MAX)


class IntegrityRegisterSchema(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("registerName", char.IA5String()),
        namedtype.OptionalNamedType("registerNum", univ.Integer()),
        namedtype.NamedType("registerDigests", FwidListSchema()),
    )


class IrListSchema(univ.SequenceOf):  # type: ignore[misc]
    componentType = IntegrityRegisterSchema()
    subtypeSpec = constraint.ValueSizeConstraint(1, _MAX)


class TcbInfoSchema(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("vendor", char.UTF8String().subtype(implicitTag=_implicit(0))),
        namedtype.OptionalNamedType("model", char.UTF8String().subtype(implicitTag=_implicit(1))),
        namedtype.OptionalNamedType("version", char.UTF8String().subtype(implicitTag=_implicit(2))),
        namedtype.OptionalNamedType("svn", univ.Integer().subtype(implicitTag=_implicit(3))),
        namedtype.OptionalNamedType("layer", univ.Integer().subtype(implicitTag=_implicit(4))),
        namedtype.OptionalNamedType("index", univ.Integer().subtype(implicitTag=_implicit(5))),
        namedtype.OptionalNamedType(
            "fwids", FwidListSchema().subtype(implicitTag=_implicit(6, constructed=True))
        ),
        namedtype.OptionalNamedType("flags", univ.BitString().subtype(implicitTag=_implicit(7))),
        namedtype.OptionalNamedType(
            "vendorInfo", univ.OctetString().subtype(implicitTag=_implicit(8))
        ),
        namedtype.OptionalNamedType("type", univ.OctetString().subtype(implicitTag=_implicit(9))),
        namedtype.OptionalNamedType(
            "flagsMask", univ.BitString().subtype(implicitTag=_implicit(10))
        ),
        namedtype.OptionalNamedType(
            "integrityRegisters",
            IrListSchema().subtype(implicitTag=_implicit(11, constructed=True)),
        ),
    )


class TcbInfoSeqSchema(univ.SequenceOf):  # type: ignore[misc]
    componentType = TcbInfoSchema()
    subtypeSpec = constraint.ValueSizeConstraint(1, _MAX)


class UeidSchema(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(namedtype.NamedType("ueid", univ.OctetString()))


class ModeSchema(univ.Choice):  # type: ignore[misc]
    """``Mode``: INTEGER per the specification text, ENUMERATED as open-dice encodes it."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("enumerated", univ.Enumerated()),
        namedtype.NamedType("integer", univ.Integer()),
    )


class OpenDiceInputSchema(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType(
            "codeHash", univ.OctetString().subtype(explicitTag=_explicit(0))
        ),
        namedtype.OptionalNamedType(
            "codeDescriptor", univ.OctetString().subtype(explicitTag=_explicit(1))
        ),
        namedtype.OptionalNamedType(
            "configurationHash", univ.OctetString().subtype(explicitTag=_explicit(2))
        ),
        namedtype.OptionalNamedType(
            "configurationDescriptor", univ.OctetString().subtype(explicitTag=_explicit(3))
        ),
        namedtype.OptionalNamedType(
            "authorityHash", univ.OctetString().subtype(explicitTag=_explicit(4))
        ),
        namedtype.OptionalNamedType(
            "authorityDescriptor", univ.OctetString().subtype(explicitTag=_explicit(5))
        ),
        namedtype.OptionalNamedType("mode", ModeSchema().subtype(explicitTag=_explicit(6))),
        namedtype.OptionalNamedType(
            "profileName", char.UTF8String().subtype(explicitTag=_explicit(7))
        ),
    )


# --------------------------------------------------------------------------------------------
# Strict DER decoding and small conversions shared by the value classes
# --------------------------------------------------------------------------------------------

# What pyasn1 raises on hostile input besides its own errors (deep nesting, bad UTF-8, ...).
DECODE_ERRORS: Final = (
    PyAsn1Error,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    OverflowError,
    AttributeError,
    RecursionError,
)

_T = TypeVar("_T")
_PYASN1_TAG: Final = re.compile(r"<TagSet object, tags (\d+):(\d+):(\d+)>")
_TAG_CLASSES: Final = {0: "universal", 64: "application", 128: "context", 192: "private"}


def strict_decode(data: bytes, spec: Any, what: str, convert: Callable[[Any], _T]) -> _T:
    """Decode exactly one DER value of ``spec``; refuse trailing bytes and non-DER encodings.

    pyasn1's DER decoder accepts some BER forms, so the value is re-encoded and compared byte
    for byte: whatever does not survive that round trip was not DER.
    """
    try:
        value, rest = der_decoder.decode(data, asn1Spec=spec)
    except DECODE_ERRORS as e:
        raise DiceExtensionError(f"{what}: malformed DER ({one_line(e)})") from e
    if rest:
        raise DiceExtensionError(f"{what}: {len(rest)} trailing bytes after the DER value")
    try:
        # Convert first: a value that makes no sense gets its own message.
        result = convert(value)
        canonical = der_encoder.encode(value)
    except DiceExtensionError:
        raise
    except DECODE_ERRORS as e:
        raise DiceExtensionError(f"{what}: malformed value ({one_line(e)})") from e
    if canonical != data:
        raise DiceExtensionError(f"{what}: not DER (a BER form, or fields out of order)")
    return result


def decode_generic(data: bytes) -> Any:
    """Decode DER without a schema (for recognising foreign layouts); ``None`` if impossible."""
    try:
        value, _ = der_decoder.decode(data)
    except DECODE_ERRORS:
        return None
    return value


def encode(value: Any) -> bytes:
    try:
        der: bytes = der_encoder.encode(value)
    except DECODE_ERRORS as e:
        raise DiceExtensionError(f"cannot encode {type(value).__name__}: {one_line(e)}") from e
    return der


def component(value: Any, name: str) -> Any:
    """An OPTIONAL component, or ``None`` when absent."""
    item = value.getComponentByName(name, None, instantiate=False)
    if item is None or not item.isValue:
        return None
    return item


def text(value: Any) -> str | None:
    return None if value is None else str(value)


def octets(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def integer(value: Any) -> int | None:
    return None if value is None else int(value)


def check_optional(value: object, kind: type, name: str) -> None:
    if value is not None and not isinstance(value, kind):
        raise DiceExtensionError(f"{name} must be {kind.__name__}, not {type(value).__name__}")


def check_natural(value: object, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise DiceExtensionError(f"{name} must be an integer, not {type(value).__name__}")
    if value < 0:
        raise DiceExtensionError(f"{name} must not be negative: {value}")


def as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise DiceExtensionError(f"{what}: expected DER bytes, got {type(data).__name__}")


def one_line(error: BaseException) -> str:
    """A short, readable message for a pyasn1 (or other) error."""
    message = " ".join(str(error).split())
    unexpected = _PYASN1_TAG.match(message)
    if unexpected is not None and " not in asn1Spec" in message:
        tag_class, form, number = (int(g) for g in unexpected.groups())
        label = _TAG_CLASSES.get(tag_class, "tag")
        kind = "constructed" if form else "primitive"
        return f"unexpected {label} tag {number} ({kind})"
    if len(message) > 100:
        message = message[:97] + "..."
    return message or type(error).__name__


class DerExtension(x509.ExtensionType):
    """A cryptography ``ExtensionType`` wrapping one of our value objects (``to_der``)."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def public_bytes(self) -> bytes:
        der: bytes = self._value.to_der()
        return der

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DerExtension) and (
            type(other) is type(self) and self._value == other._value
        )

    def __hash__(self) -> int:
        return hash((type(self), self._value))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._value!r})>"
