"""TCG DICE certificate extensions (and Open DICE's, re-exported) as typed values, strict DER.

Extensions (TCG DICE Attestation Architecture v1.2, section 6 and Appendix A; Open DICE spec):

==============================  =========================  ===================================
OID                              value class                 carried by
==============================  =========================  ===================================
2.23.133.5.4.1 tcg-dice-TcbInfo  :class:`TcbInfo`           alias certificates (critical here)
2.23.133.5.4.4 tcg-dice-Ueid     :class:`Ueid`              the DeviceID certificate
2.23.133.5.4.5 MultiTcbInfo      :class:`MultiTcbInfo`      certificates describing several TCBs
1.3.6.1.4.1.11129.2.1.24         :class:`OpenDiceInput`     Open DICE CDI certificates (see
                                                             :mod:`.open_dice_ext`)
==============================  =========================  ===================================

Decoding is strict: the bytes must be exactly one DER value of the right type -- no trailing
bytes, no unknown fields, no BER forms (cryptography's DER decoder, see :mod:`.dice_schema`),
and values that make no sense (negative SVN, a SHA-256 FWID that is not 32 bytes) are refused.
Every failure is a :class:`~edgetrust.errors.DiceExtensionError` naming the extension and the
problem.

This module is the public facade: it defines the UEID extension and re-exports the TcbInfo family
from :mod:`.tcb_info` (firmware-level values, decoded values cached by their bytes) and the
Open DICE input from :mod:`.open_dice_ext`. A UEID is one device's and is decoded each time: a
fleet would never hit a cache of them.

For certificate builders and for cryptography's path validator, each value has an
:class:`cryptography.x509.ExtensionType` subclass (:class:`TcbInfoExtension`, ...) carrying its
OID: ``ExtensionPolicy.may_be_present(TcbInfoExtension, ...)`` is what makes a critical TcbInfo
acceptable to ``cryptography.x509.verification``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from cryptography import x509

from edgetrust.certs import dice_schema as schema
from edgetrust.certs.open_dice_ext import (
    OPEN_DICE_INPUT_OID,
    OpenDiceInput,
    OpenDiceInputExtension,
    OpenDiceMode,
)
from edgetrust.certs.tcb_info import (
    FWID,
    MULTI_TCB_INFO_OID,
    TCB_INFO_OID,
    IntegrityRegister,
    MultiTcbInfo,
    MultiTcbInfoExtension,
    OperationalFlag,
    OperationalFlags,
    TcbInfo,
    TcbInfoExtension,
    # The firmware-level decode caches, reachable here too (bench_identity clears them).
    _decode_multi_tcb_info,  # noqa: F401
    _decode_tcb_info,  # noqa: F401
)
from edgetrust.errors import DiceExtensionError

__all__ = [
    "DICE_EXTENSION_OIDS",
    "FWID",
    "MULTI_TCB_INFO_OID",
    "OPEN_DICE_INPUT_OID",
    "TCB_INFO_OID",
    "UEID_OID",
    "IntegrityRegister",
    "MultiTcbInfo",
    "MultiTcbInfoExtension",
    "OpenDiceInput",
    "OpenDiceInputExtension",
    "OpenDiceMode",
    "OperationalFlag",
    "OperationalFlags",
    "TcbInfo",
    "TcbInfoExtension",
    "Ueid",
    "UeidExtension",
]

UEID_OID: Final = x509.ObjectIdentifier("2.23.133.5.4.4")
DICE_EXTENSION_OIDS: Final = frozenset(
    {TCB_INFO_OID, UEID_OID, MULTI_TCB_INFO_OID, OPEN_DICE_INPUT_OID}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ueid:
    """``TcgUeid``: the device's Universal Entity ID (the value of tcg-dice-Ueid)."""

    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes) or not self.value:
            raise DiceExtensionError("UEID must be a non-empty byte string")

    @classmethod
    def from_der(cls, data: bytes) -> Ueid:
        return _decode_ueid(schema.as_bytes(data, "Ueid"))

    def to_der(self) -> bytes:
        return schema.encode(schema.UeidAsn1(ueid=self.value))

    def hex(self) -> str:
        return self.value.hex()


class UeidExtension(schema.DerExtension):
    """tcg-dice-Ueid (2.23.133.5.4.4)."""

    oid: ClassVar[x509.ObjectIdentifier] = UEID_OID

    def __init__(self, value: Ueid) -> None:
        super().__init__(value)

    @property
    def value(self) -> Ueid:
        result: Ueid = self._value
        return result


def _decode_ueid(data: bytes) -> Ueid:
    return Ueid(value=schema.decode(schema.UeidAsn1, data, "Ueid", schema.UEID_SHAPE).ueid)
