"""ASN.1 schemas of the TCG DICE and Open DICE certificate extensions, and strict DER decoding.

Private to :mod:`edgetrust.certs.dice_ext` and :mod:`edgetrust.certs.open_dice_ext`, which
turn these into typed values. The modules are transcribed from the specifications, not from any
implementation:

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
  its known-answer certificate) encodes the mode as ENUMERATED; both decode.

The schemas are declared with cryptography's Rust-backed declarative ASN.1 module
(:mod:`cryptography.hazmat.asn1`, cryptography >= 48), a DER decoder: it refuses indefinite and
non-minimal lengths, non-minimal INTEGERs, OID arcs and tags, constructed strings, BIT STRINGs
with non-zero unused bits, invalid UTF-8 / IA5, wrong tag classes or forms, fields out of order,
unknown fields and trailing bytes -- so nothing needs re-encoding to prove it was DER (a
TcbInfo decodes in ~10 us). Three things it cannot express are done here instead:

* a SEQUENCE OF at the root (MultiTcbInfo): decoded inside a one-field SEQUENCE whose header
  is prepended (:func:`decode_sequence_of`);
* ``SIZE (1..MAX)`` on an OPTIONAL SEQUENCE OF (fwids, integrityRegisters): the value classes
  refuse empty lists;
* ENUMERATED (the Open DICE mode): the field is a CHOICE of INTEGER and any other TLV, and
  :func:`enumerated` accepts only an ENUMERATED there (DER-minimal); to encode it,
  :func:`encode_open_dice_input` splices the 5 bytes of ``[6] EXPLICIT ENUMERATED`` between the
  fields the schema encodes (cryptography 49 cannot encode a raw TLV).

The Rust decoder says only what went wrong ("ExtraData"), not where. On that failure path
:mod:`.der_diagnosis` walks the bytes to name the field and the defect.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

from cryptography import x509
from cryptography.hazmat import asn1

from edgetrust.certs.der_diagnosis import Field, Shape, explain
from edgetrust.errors import DiceExtensionError

_ONE_OR_MORE: Final = asn1.Size(min=1, max=None)


@asn1.sequence
class FwidAsn1:
    hash_alg: x509.ObjectIdentifier
    digest: bytes


@asn1.sequence
class IntegrityRegisterAsn1:
    register_name: asn1.IA5String | None
    register_num: int | None
    register_digests: Annotated[list[FwidAsn1], _ONE_OR_MORE]


@asn1.sequence
class TcbInfoAsn1:
    vendor: Annotated[str | None, asn1.Implicit(0)]
    model: Annotated[str | None, asn1.Implicit(1)]
    version: Annotated[str | None, asn1.Implicit(2)]
    svn: Annotated[int | None, asn1.Implicit(3)]
    layer: Annotated[int | None, asn1.Implicit(4)]
    index: Annotated[int | None, asn1.Implicit(5)]
    # SIZE (1..MAX) cannot annotate an OPTIONAL: TcbInfo refuses an empty list.
    fwids: Annotated[list[FwidAsn1] | None, asn1.Implicit(6)]
    flags: Annotated[asn1.BitString | None, asn1.Implicit(7)]
    vendor_info: Annotated[bytes | None, asn1.Implicit(8)]
    type: Annotated[bytes | None, asn1.Implicit(9)]
    flags_mask: Annotated[asn1.BitString | None, asn1.Implicit(10)]
    integrity_registers: Annotated[list[IntegrityRegisterAsn1] | None, asn1.Implicit(11)]


@asn1.sequence
class TcbInfoSeqAsn1:
    """A one-field SEQUENCE around ``DiceTcbInfoSeq`` (a root SEQUENCE OF is not supported)."""

    entries: Annotated[list[TcbInfoAsn1], _ONE_OR_MORE]


@asn1.sequence
class UeidAsn1:
    ueid: bytes


@asn1.sequence
class OpenDiceInputAsn1:
    code_hash: Annotated[bytes | None, asn1.Explicit(0)] = None
    code_descriptor: Annotated[bytes | None, asn1.Explicit(1)] = None
    configuration_hash: Annotated[bytes | None, asn1.Explicit(2)] = None
    configuration_descriptor: Annotated[bytes | None, asn1.Explicit(3)] = None
    authority_hash: Annotated[bytes | None, asn1.Explicit(4)] = None
    authority_descriptor: Annotated[bytes | None, asn1.Explicit(5)] = None
    # INTEGER, or any other TLV, which enumerated() accepts only as an ENUMERATED.
    mode: Annotated[int | asn1.TLV | None, asn1.Explicit(6)] = None
    profile_name: Annotated[str | None, asn1.Explicit(7)] = None


@asn1.sequence
class RiotCompositeDeviceIdAsn1:
    """Microsoft RIoT's ``CompositeDeviceID`` (version, DeviceID SubjectPublicKeyInfo, FWID):
    decoded only to recognise it under the TcbInfo OID, and refuse it by name."""

    version: int
    device_id_public: asn1.TLV
    fwid: FwidAsn1


# --------------------------------------------------------------------------------------------
# Shapes for the failure path (der_diagnosis): the same modules, as tags and kinds
# --------------------------------------------------------------------------------------------

_FWID: Final = Shape(fields=(Field(0x06, "hashAlg", "oid", False), Field(0x04, "digest")))
_FWID_LIST: Final = Shape(of=_FWID)
_REGISTERS: Final = Shape(
    of=Shape(
        fields=(
            Field(0x16, "registerName", "ia5"),
            Field(0x02, "registerNum", "integer"),
            Field(0x30, "registerDigests", "sequence", False, _FWID_LIST),
        )
    )
)
TCB_INFO_SHAPE: Final = Shape(
    fields=(
        Field(0x80, "vendor", "utf8"),
        Field(0x81, "model", "utf8"),
        Field(0x82, "version", "utf8"),
        Field(0x83, "svn", "integer"),
        Field(0x84, "layer", "integer"),
        Field(0x85, "index", "integer"),
        Field(0xA6, "fwids", "sequence", True, _FWID_LIST),
        Field(0x87, "flags", "bits"),
        Field(0x88, "vendorInfo"),
        Field(0x89, "type"),
        Field(0x8A, "flagsMask", "bits"),
        Field(0xAB, "integrityRegisters", "sequence", True, _REGISTERS),
    )
)
MULTI_TCB_INFO_SHAPE: Final = Shape(of=TCB_INFO_SHAPE)
UEID_SHAPE: Final = Shape(fields=(Field(0x04, "ueid", "octets", False),))
_OCTETS: Final = Field(0x04, "OCTET STRING")
OPEN_DICE_INPUT_SHAPE: Final = Shape(
    fields=(
        Field(0xA0, "codeHash", "explicit", True, _OCTETS),
        Field(0xA1, "codeDescriptor", "explicit", True, _OCTETS),
        Field(0xA2, "configurationHash", "explicit", True, _OCTETS),
        Field(0xA3, "configurationDescriptor", "explicit", True, _OCTETS),
        Field(0xA4, "authorityHash", "explicit", True, _OCTETS),
        Field(0xA5, "authorityDescriptor", "explicit", True, _OCTETS),
        Field(0xA6, "mode", "explicit", True, Field(0x02, "mode", "number")),
        Field(0xA7, "profileName", "explicit", True, Field(0x0C, "UTF8String", "utf8")),
    )
)


# --------------------------------------------------------------------------------------------
# Strict DER decoding and encoding
# --------------------------------------------------------------------------------------------

_T = TypeVar("_T")


def decode(spec: type[_T], data: bytes, what: str, shape: Shape) -> _T:
    """Exactly one DER value of ``spec``, or :class:`DiceExtensionError` naming the defect."""
    try:
        return asn1.decode_der(spec, data)
    except ValueError as e:  # the declarative decoder's only error for bad input
        raise DiceExtensionError(f"{what}: {explain(data, shape, e)}") from e


def decode_sequence_of(data: bytes, what: str, shape: Shape) -> list[TcbInfoAsn1]:
    """A root ``SEQUENCE OF DiceTcbInfo``, decoded as the one field of a synthetic SEQUENCE.

    The prepended header is a definite, minimal length, so the value inside is held to every
    DER rule (and to ending exactly where ``data`` ends) as if it were the root.
    """
    try:
        return asn1.decode_der(TcbInfoSeqAsn1, b"\x30" + _length(len(data)) + data).entries
    except ValueError as e:
        raise DiceExtensionError(f"{what}: {explain(data, shape, e)}") from e


def encode(value: object) -> bytes:
    """DER of a schema object (an ``@asn1.sequence`` instance)."""
    try:
        return asn1.encode_der(value)
    except (ValueError, TypeError) as e:
        raise DiceExtensionError(f"cannot encode {type(value).__name__}: {e}") from e


def encode_sequence_of(entries: list[TcbInfoAsn1]) -> bytes:
    """DER of a ``SEQUENCE OF DiceTcbInfo`` (the synthetic SEQUENCE's header dropped)."""
    return _content(encode(TcbInfoSeqAsn1(entries=entries)))


def enumerated(value: int | asn1.TLV, what: str) -> int:
    """The number in an INTEGER (already decoded) or a DER ENUMERATED TLV; refuse other types."""
    if isinstance(value, int):
        return value
    tag = value.tag_bytes
    content = bytes(value.data)
    if tag != b"\x0a":
        raise DiceExtensionError(f"{what} is neither INTEGER nor ENUMERATED (tag {tag.hex()})")
    if not content:
        raise DiceExtensionError(f"{what}: malformed DER (empty ENUMERATED)")
    if len(content) > 1 and (
        (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)
    ):
        raise DiceExtensionError(f"{what}: not DER (non-minimal ENUMERATED)")
    return int.from_bytes(content, "big", signed=True)


def encode_open_dice_input(
    inputs: OpenDiceInputAsn1, mode: int | None, profile_name: str | None
) -> bytes:
    """DER of an OpenDiceInput whose ``mode`` (0..127) is an ENUMERATED, as open-dice writes it.

    ``inputs`` holds fields [0]..[5] only; the schema encodes them and ``profile_name`` ([7]),
    and the mode, ``[6] EXPLICIT ENUMERATED``, goes in between.
    """
    if inputs.mode is not None or inputs.profile_name is not None:
        raise DiceExtensionError("encode_open_dice_input takes the mode and profile apart")
    content = _content(encode(inputs))
    if mode is not None:
        if not 0 <= mode <= 127:
            raise DiceExtensionError(f"cannot encode Open DICE mode {mode}")
        content += bytes((0xA6, 3, 0x0A, 1, mode))
    if profile_name is not None:
        content += _content(encode(OpenDiceInputAsn1(profile_name=profile_name)))
    return b"\x30" + _length(len(content)) + content


def _content(der: bytes) -> bytes:
    """The contents of one DER TLV with a low tag number (its header dropped)."""
    return der[2 + (der[1] & 0x7F if der[1] & 0x80 else 0) :]


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(size),)) + size


# --------------------------------------------------------------------------------------------
# Checks shared by the value classes
# --------------------------------------------------------------------------------------------


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
