"""The TCG DICE TcbInfo extensions as typed values, strict DER: TcbInfo and MultiTcbInfo.

TCG DICE Attestation Architecture v1.2, section 6 and Appendix A: ``DiceTcbInfo``
(tcg-dice-TcbInfo, 2.23.133.5.4.1, carried critical by alias certificates) with its
:class:`FWID` list, :class:`OperationalFlags` and :class:`IntegrityRegister` list, and
``DiceTcbInfoSeq`` (tcg-dice-MultiTcbInfo, 2.23.133.5.4.5, certificates describing several TCBs).
The ASN.1 is in :mod:`.dice_schema`; :mod:`.dice_ext` is the public facade of every DICE
extension and re-exports these names.

Decoding is strict (see :mod:`.dice_ext`): values that make no sense (negative SVN, a SHA-256
FWID that is not 32 bytes) are refused with a :class:`~edgetrust.errors.DiceExtensionError`.
The old Microsoft RIoT ``CompositeDeviceID`` layout, which used the TcbInfo OID for a different
structure, is recognised and refused with its own message.

A TcbInfo decodes in ~12 us (~4 us of it the Rust decoder, the rest building the value
objects), ~30 us in the middle of a busy verifier. TcbInfo and MultiTcbInfo describe firmware,
so a fleet on the same releases presents the same bytes over and over: their decoded values
(immutable) are cached by their bytes (``functools.lru_cache``, 256 entries).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from cryptography import x509
from cryptography.hazmat import asn1

from edgetrust.certs import dice_schema as schema
from edgetrust.errors import DiceExtensionError

__all__ = [
    "FWID",
    "MULTI_TCB_INFO_OID",
    "TCB_INFO_OID",
    "IntegrityRegister",
    "MultiTcbInfo",
    "MultiTcbInfoExtension",
    "OperationalFlag",
    "OperationalFlags",
    "TcbInfo",
    "TcbInfoExtension",
]

TCB_INFO_OID: Final = x509.ObjectIdentifier("2.23.133.5.4.1")
MULTI_TCB_INFO_OID: Final = x509.ObjectIdentifier("2.23.133.5.4.5")

# Hash algorithms of FWIDs: dotted OID -> (name, digest size). NIST CSOR and OIW.
_HASHES: Final[dict[str, tuple[str, int]]] = {
    "1.3.14.3.2.26": ("sha1", 20),
    "2.16.840.1.101.3.4.2.4": ("sha224", 28),
    "2.16.840.1.101.3.4.2.1": ("sha256", 32),
    "2.16.840.1.101.3.4.2.2": ("sha384", 48),
    "2.16.840.1.101.3.4.2.3": ("sha512", 64),
    "2.16.840.1.101.3.4.2.7": ("sha3-224", 28),
    "2.16.840.1.101.3.4.2.8": ("sha3-256", 32),
    "2.16.840.1.101.3.4.2.9": ("sha3-384", 48),
    "2.16.840.1.101.3.4.2.10": ("sha3-512", 64),
}
_HASH_OIDS: Final = {name: oid for oid, (name, _) in _HASHES.items()}

# Distinct TcbInfo values in a fleet: firmware releases x layers. Keys are extension bytes a
# device sent, so the bound also bounds the memory an attacker can make us hold.
_CACHE_SIZE: Final = 256


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FWID:
    """A firmware identifier: a hash algorithm (dotted OID) and the digest of the measured code."""

    hash_alg: str
    digest: bytes

    def __post_init__(self) -> None:
        hash_alg, digest = self.hash_alg, self.digest
        known = _HASHES.get(hash_alg) if isinstance(hash_alg, str) else None
        if known is None and (not isinstance(hash_alg, str) or not _is_dotted_oid(hash_alg)):
            raise DiceExtensionError(f"FWID hashAlg is not an OID: {hash_alg!r}")
        if not isinstance(digest, bytes):
            raise DiceExtensionError("FWID digest must be bytes")
        if known is not None and len(digest) != known[1]:
            raise DiceExtensionError(
                f"FWID digest is {len(digest)} bytes; {known[0]} digests are {known[1]}"
            )

    @classmethod
    def of(cls, digest: bytes, hash_name: str = "sha256") -> FWID:
        """An FWID from a digest and a hash name (``sha256``, ``sha384``, ``sha512``, ...)."""
        oid = _HASH_OIDS.get(hash_name)
        if oid is None:
            raise DiceExtensionError(f"unknown FWID hash algorithm {hash_name!r}")
        return cls(hash_alg=oid, digest=digest)

    @property
    def hash_name(self) -> str | None:
        """The hash algorithm's name, or ``None`` for an OID we do not know."""
        known = _HASHES.get(self.hash_alg)
        return known[0] if known else None

    def to_dict(self) -> dict[str, Any]:
        return {"hash_alg": self.hash_name or self.hash_alg, "digest": self.digest.hex()}


class OperationalFlag(enum.IntFlag, boundary=enum.KEEP):
    """Bits of the TCG ``OperationalFlags`` BIT STRING: BIT STRING bit *n* is ``1 << n``."""

    NOT_CONFIGURED = 1 << 0
    NOT_SECURE = 1 << 1
    RECOVERY = 1 << 2
    DEBUG = 1 << 3
    NOT_REPLAY_PROTECTED = 1 << 4
    NOT_INTEGRITY_PROTECTED = 1 << 5
    NOT_RUNTIME_MEASURED = 1 << 6
    NOT_IMMUTABLE = 1 << 7
    NOT_TCB = 1 << 8
    FIXED_WIDTH = 1 << 31


# Spec names, in bit order, for display.
_FLAG_NAMES: Final = {
    OperationalFlag.NOT_CONFIGURED: "notConfigured",
    OperationalFlag.NOT_SECURE: "notSecure",
    OperationalFlag.RECOVERY: "recovery",
    OperationalFlag.DEBUG: "debug",
    OperationalFlag.NOT_REPLAY_PROTECTED: "notReplayProtected",
    OperationalFlag.NOT_INTEGRITY_PROTECTED: "notIntegrityProtected",
    OperationalFlag.NOT_RUNTIME_MEASURED: "notRuntimeMeasured",
    OperationalFlag.NOT_IMMUTABLE: "notImmutable",
    OperationalFlag.NOT_TCB: "notTcb",
    OperationalFlag.FIXED_WIDTH: "fixedWidth",
}


_FLAG_NAMES_BY_BIT: Final = {int(flag): name for flag, name in _FLAG_NAMES.items()}
_KNOWN_BITS: Final = sum(_FLAG_NAMES_BY_BIT)
# Each octet with its bits in reverse order (see OperationalFlags._to_asn1).
_REVERSED_BITS: Final = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationalFlags:
    """An ``OperationalFlags`` (or ``OperationalFlagsMask``) BIT STRING.

    ``width`` is the number of bits encoded; the TCG profile encodes all 32 (the ``fixedWidth``
    bit exists for that), which is our default. Decoding keeps the width it found so that a
    value re-encodes to the same bytes.
    """

    #: The bits as a plain ``int`` (test one with ``flag in flags``). Not an
    #: :class:`OperationalFlag`: the enum keeps every distinct value it is called with, so
    #: device-chosen bit patterns would grow the verifier's memory without bound.
    value: int = 0
    width: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or not 0 <= self.width <= 256:
            raise DiceExtensionError(f"flags width out of range: {self.width!r}")
        if not isinstance(self.value, int) or self.value < 0 or self.value >> self.width:
            raise DiceExtensionError(f"flags {self.value!r} do not fit in {self.width} bits")
        if type(self.value) is not int:
            object.__setattr__(self, "value", int(self.value))

    @property
    def known(self) -> OperationalFlag:
        """The bits the TCG profile names, as an :class:`OperationalFlag` (unnamed bits dropped)."""
        return OperationalFlag(self.value & _KNOWN_BITS)

    def __contains__(self, flag: OperationalFlag) -> bool:
        return bool(self.value & flag)

    @property
    def not_configured(self) -> bool:
        return OperationalFlag.NOT_CONFIGURED in self

    @property
    def not_secure(self) -> bool:
        return OperationalFlag.NOT_SECURE in self

    @property
    def recovery(self) -> bool:
        return OperationalFlag.RECOVERY in self

    @property
    def debug(self) -> bool:
        return OperationalFlag.DEBUG in self

    def names(self) -> tuple[str, ...]:
        """The set bits by their specification names (``bit12`` for an unnamed bit)."""
        return tuple(
            _FLAG_NAMES_BY_BIT.get(1 << bit, f"bit{bit}")
            for bit in range(self.width)
            if self.value >> bit & 1
        )

    def _to_asn1(self) -> asn1.BitString:
        # BIT STRING bit n is bit 7 - n % 8 of octet n // 8: with the bits of each octet
        # reversed, it is bit n of the little-endian number. Unused bits are zero (DER).
        width = self.width
        octets = self.value.to_bytes((width + 7) // 8, "little").translate(_REVERSED_BITS)
        return asn1.BitString(octets, -width % 8)

    @classmethod
    def _from_asn1(cls, value: asn1.BitString) -> OperationalFlags:
        octets = value.as_bytes()
        number = int.from_bytes(octets.translate(_REVERSED_BITS), "little")
        return cls(
            value=number,
            width=len(octets) * 8 - value.padding_bits(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class IntegrityRegister:
    """One ``IntegrityRegister`` of a TcbInfo (DICE 1.2): a name and/or number and its digests."""

    name: str | None = None
    number: int | None = None
    digests: tuple[FWID, ...]

    def __post_init__(self) -> None:
        schema.check_optional(self.name, str, "registerName")
        if self.name is not None and not self.name.isascii():
            raise DiceExtensionError("IntegrityRegister registerName must be IA5 (ASCII)")
        schema.check_natural(self.number, "registerNum")
        object.__setattr__(self, "digests", _fwid_tuple(self.digests, "registerDigests"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "number": self.number,
            "digests": [d.to_dict() for d in self.digests],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TcbInfo:
    """``DiceTcbInfo``: the measurements and state of one TCB layer. Absent fields are ``None``."""

    vendor: str | None = None
    model: str | None = None
    version: str | None = None
    svn: int | None = None
    layer: int | None = None
    index: int | None = None
    fwids: tuple[FWID, ...] | None = None
    flags: OperationalFlags | None = None
    vendor_info: bytes | None = None
    tcb_type: bytes | None = None
    flags_mask: OperationalFlags | None = None
    integrity_registers: tuple[IntegrityRegister, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("vendor", "model", "version"):
            schema.check_optional(getattr(self, name), str, name)
        for name in ("svn", "layer", "index"):
            schema.check_natural(getattr(self, name), name)
        if self.fwids is not None:
            object.__setattr__(self, "fwids", _fwid_tuple(self.fwids, "fwids"))
        schema.check_optional(self.flags, OperationalFlags, "flags")
        schema.check_optional(self.flags_mask, OperationalFlags, "flagsMask")
        schema.check_optional(self.vendor_info, bytes, "vendorInfo")
        schema.check_optional(self.tcb_type, bytes, "type")
        if self.integrity_registers is not None:
            registers = tuple(self.integrity_registers)
            if not registers or not all(isinstance(r, IntegrityRegister) for r in registers):
                raise DiceExtensionError("integrityRegisters must be 1 or more IntegrityRegister")
            object.__setattr__(self, "integrity_registers", registers)

    @classmethod
    def from_der(cls, data: bytes) -> TcbInfo:
        """Decode a ``DiceTcbInfo`` (the value of a tcg-dice-TcbInfo extension)."""
        return _decode_tcb_info(schema.as_bytes(data, "TcbInfo"))

    def to_der(self) -> bytes:
        return schema.encode(self._to_asn1())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: hex for bytes, flag names for flags."""
        return {
            "vendor": self.vendor,
            "model": self.model,
            "version": self.version,
            "svn": self.svn,
            "layer": self.layer,
            "index": self.index,
            "fwids": None if self.fwids is None else [f.to_dict() for f in self.fwids],
            "flags": None if self.flags is None else list(self.flags.names()),
            "vendor_info": None if self.vendor_info is None else self.vendor_info.hex(),
            "type": None if self.tcb_type is None else self.tcb_type.hex(),
            "flags_mask": None if self.flags_mask is None else list(self.flags_mask.names()),
            "integrity_registers": (
                None
                if self.integrity_registers is None
                else [r.to_dict() for r in self.integrity_registers]
            ),
        }

    def _to_asn1(self) -> schema.TcbInfoAsn1:
        registers = self.integrity_registers
        return schema.TcbInfoAsn1(
            vendor=self.vendor,
            model=self.model,
            version=self.version,
            svn=self.svn,
            layer=self.layer,
            index=self.index,
            fwids=None if self.fwids is None else _fwids_to_asn1(self.fwids),
            flags=None if self.flags is None else self.flags._to_asn1(),
            vendor_info=self.vendor_info,
            type=self.tcb_type,
            flags_mask=None if self.flags_mask is None else self.flags_mask._to_asn1(),
            integrity_registers=(
                None
                if registers is None
                else [
                    schema.IntegrityRegisterAsn1(
                        register_name=None if r.name is None else asn1.IA5String(r.name),
                        register_num=r.number,
                        register_digests=_fwids_to_asn1(r.digests),
                    )
                    for r in registers
                ]
            ),
        )

    @classmethod
    def _from_asn1(cls, value: schema.TcbInfoAsn1) -> TcbInfo:
        fwids, flags, flags_mask = value.fwids, value.flags, value.flags_mask
        registers = value.integrity_registers
        return cls(
            vendor=value.vendor,
            model=value.model,
            version=value.version,
            svn=value.svn,
            layer=value.layer,
            index=value.index,
            fwids=None if fwids is None else _fwids(fwids),
            flags=None if flags is None else OperationalFlags._from_asn1(flags),
            vendor_info=value.vendor_info,
            tcb_type=value.type,
            flags_mask=None if flags_mask is None else OperationalFlags._from_asn1(flags_mask),
            integrity_registers=(
                None
                if registers is None
                else tuple(
                    IntegrityRegister(
                        name=None if r.register_name is None else r.register_name.as_str(),
                        number=r.register_num,
                        digests=_fwids(r.register_digests),
                    )
                    for r in registers
                )
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MultiTcbInfo:
    """``DiceTcbInfoSeq``: the value of tcg-dice-MultiTcbInfo, one or more TcbInfo."""

    entries: tuple[TcbInfo, ...]

    def __post_init__(self) -> None:
        entries = tuple(self.entries)
        if not entries or not all(isinstance(e, TcbInfo) for e in entries):
            raise DiceExtensionError("MultiTcbInfo must hold 1 or more TcbInfo")
        object.__setattr__(self, "entries", entries)

    @classmethod
    def from_der(cls, data: bytes) -> MultiTcbInfo:
        return _decode_multi_tcb_info(schema.as_bytes(data, "MultiTcbInfo"))

    def to_der(self) -> bytes:
        return schema.encode_sequence_of([entry._to_asn1() for entry in self.entries])


# --------------------------------------------------------------------------------------------
# cryptography ExtensionType subclasses (builders add them; the path validator accepts them)
# --------------------------------------------------------------------------------------------


class TcbInfoExtension(schema.DerExtension):
    """tcg-dice-TcbInfo (2.23.133.5.4.1)."""

    oid: ClassVar[x509.ObjectIdentifier] = TCB_INFO_OID

    def __init__(self, value: TcbInfo) -> None:
        super().__init__(value)

    @property
    def value(self) -> TcbInfo:
        result: TcbInfo = self._value
        return result


class MultiTcbInfoExtension(schema.DerExtension):
    """tcg-dice-MultiTcbInfo (2.23.133.5.4.5)."""

    oid: ClassVar[x509.ObjectIdentifier] = MULTI_TCB_INFO_OID

    def __init__(self, value: MultiTcbInfo) -> None:
        super().__init__(value)

    @property
    def value(self) -> MultiTcbInfo:
        result: MultiTcbInfo = self._value
        return result


# --------------------------------------------------------------------------------------------
# Strict DER decoding (firmware-level values cached by their bytes)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _decode_tcb_info(data: bytes) -> TcbInfo:
    try:
        value = schema.decode(schema.TcbInfoAsn1, data, "TcbInfo", schema.TCB_INFO_SHAPE)
    except DiceExtensionError as e:
        _refuse_riot_layout(data, e)
        raise
    return TcbInfo._from_asn1(value)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _decode_multi_tcb_info(data: bytes) -> MultiTcbInfo:
    entries = schema.decode_sequence_of(data, "MultiTcbInfo", schema.MULTI_TCB_INFO_SHAPE)
    return MultiTcbInfo(entries=tuple(TcbInfo._from_asn1(e) for e in entries))


def _refuse_riot_layout(data: bytes, cause: DiceExtensionError) -> None:
    """Recognise RIoT's ``CompositeDeviceID`` (SEQUENCE { INTEGER, SPKI, FWID }) under .4.1.

    A DiceTcbInfo holds only context-tagged fields, so a universal INTEGER followed by a
    SEQUENCE and an FWID can only be the old Microsoft RIoT layout.
    """
    try:
        riot = asn1.decode_der(schema.RiotCompositeDeviceIdAsn1, data)
    except ValueError:
        return
    if riot.device_id_public.tag_bytes == b"\x30":
        raise DiceExtensionError(
            "TcbInfo: the extension 2.23.133.5.4.1 holds the old Microsoft RIoT "
            "CompositeDeviceID layout (version, DeviceID key, FWID), not a TCG DiceTcbInfo"
        ) from cause


# --------------------------------------------------------------------------------------------
# Small conversions
# --------------------------------------------------------------------------------------------


def _fwids(value: list[schema.FwidAsn1]) -> tuple[FWID, ...]:
    return tuple(FWID(hash_alg=f.hash_alg.dotted_string, digest=f.digest) for f in value)


def _fwids_to_asn1(fwids: Sequence[FWID]) -> list[schema.FwidAsn1]:
    return [
        schema.FwidAsn1(hash_alg=x509.ObjectIdentifier(f.hash_alg), digest=f.digest) for f in fwids
    ]


def _fwid_tuple(value: Any, what: str) -> tuple[FWID, ...]:
    if type(value) is tuple:  # the usual case, without the slow Sequence ABC check
        items: tuple[Any, ...] = value
    elif isinstance(value, FWID) or not isinstance(value, Sequence):
        raise DiceExtensionError(f"{what} must be a sequence of FWID")
    else:
        items = tuple(value)
    if not items or not all(isinstance(f, FWID) for f in items):
        raise DiceExtensionError(f"{what} must hold 1 or more FWID")
    return items


def _is_dotted_oid(text: str) -> bool:
    parts = text.split(".")
    return len(parts) >= 2 and all(p.isdigit() and p.isascii() for p in parts)
