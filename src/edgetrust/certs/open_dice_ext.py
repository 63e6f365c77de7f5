"""The Open DICE X.509 extension (1.3.6.1.4.1.11129.2.1.24): ``OpenDiceInput``, strict DER.

Open Profile for DICE, "X.509 CDI Certificates" and "Custom Extension Format": a CDI certificate
carries, critical, the DICE input values that produced the certified key -- code hash and
descriptor, configuration hash or descriptor, authority hash and descriptor, mode, and (v2.5+)
a profile name. The ASN.1 is in :mod:`edgetrust.certs.dice_schema`.

The three hashes are the exact 64-byte input values (SHA-512 sized), so any other length is
refused. The mode is ``INTEGER (0..3)`` in the specification text and ENUMERATED in the reference
implementation's certificates; both decode, and we encode ENUMERATED as the reference does.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from cryptography import x509

from edgetrust.certs import dice_schema as schema
from edgetrust.errors import DiceExtensionError

__all__ = ["OPEN_DICE_INPUT_OID", "OpenDiceInput", "OpenDiceInputExtension", "OpenDiceMode"]

OPEN_DICE_INPUT_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.1.24")

# Python field name -> ASN.1 component name, for the OCTET STRING fields in schema order (the
# schema's attributes have the Python names).
_FIELDS: Final = (
    ("code_hash", "codeHash"),
    ("code_descriptor", "codeDescriptor"),
    ("configuration_hash", "configurationHash"),
    ("configuration_descriptor", "configurationDescriptor"),
    ("authority_hash", "authorityHash"),
    ("authority_descriptor", "authorityDescriptor"),
)
# The fields that hold a 64-byte input value when present.
_HASH_FIELDS: Final = ("code_hash", "configuration_hash", "authority_hash")


class OpenDiceMode(enum.IntEnum):
    """Open DICE ``Mode`` (same numbers as ``DiceMode`` in :mod:`edgetrust.attest.dice`)."""

    NOT_CONFIGURED = 0
    NORMAL = 1
    DEBUG = 2
    RECOVERY = 3

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenDiceInput:
    """``OpenDiceInput``: the DICE inputs of one layer in an Open DICE X.509 certificate."""

    code_hash: bytes | None = None
    code_descriptor: bytes | None = None
    configuration_hash: bytes | None = None
    configuration_descriptor: bytes | None = None
    authority_hash: bytes | None = None
    authority_descriptor: bytes | None = None
    mode: OpenDiceMode | None = None
    profile_name: str | None = None

    def __post_init__(self) -> None:
        for name, asn1_name in _FIELDS:
            schema.check_optional(getattr(self, name), bytes, asn1_name)
        for name in _HASH_FIELDS:
            field = getattr(self, name)
            if field is not None and len(field) != 64:
                raise DiceExtensionError(f"Open DICE {name} is {len(field)} bytes, not 64")
        if self.mode is not None:
            if not isinstance(self.mode, int) or self.mode not in OpenDiceMode._value2member_map_:
                raise DiceExtensionError(f"Open DICE mode {self.mode!r} is not 0..3")
            object.__setattr__(self, "mode", OpenDiceMode(self.mode))
        schema.check_optional(self.profile_name, str, "profileName")

    @classmethod
    def from_der(cls, data: bytes) -> OpenDiceInput:
        """Decode an ``OpenDiceInput`` (the value of the Open DICE extension)."""
        return _decode(schema.as_bytes(data, "OpenDiceInput"))

    def to_der(self) -> bytes:
        inputs = schema.OpenDiceInputAsn1(
            code_hash=self.code_hash,
            code_descriptor=self.code_descriptor,
            configuration_hash=self.configuration_hash,
            configuration_descriptor=self.configuration_descriptor,
            authority_hash=self.authority_hash,
            authority_descriptor=self.authority_descriptor,
        )
        # The mode is ENUMERATED, as open-dice encodes it: certificates match byte for byte.
        mode = None if self.mode is None else int(self.mode)
        return schema.encode_open_dice_input(inputs, mode, self.profile_name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, _ in _FIELDS:
            field = getattr(self, name)
            out[name] = None if field is None else field.hex()
        out["mode"] = None if self.mode is None else self.mode.label
        out["profile_name"] = self.profile_name
        return out


class OpenDiceInputExtension(schema.DerExtension):
    """Open DICE diceAttestationData (1.3.6.1.4.1.11129.2.1.24)."""

    oid: ClassVar[x509.ObjectIdentifier] = OPEN_DICE_INPUT_OID

    def __init__(self, value: OpenDiceInput) -> None:
        super().__init__(value)

    @property
    def value(self) -> OpenDiceInput:
        result: OpenDiceInput = self._value
        return result


# The inputs of a layer (code, configuration, authority, mode) are the firmware's: cached by
# their bytes like TcbInfo (see dice_ext).
@functools.lru_cache(maxsize=256)
def _decode(data: bytes) -> OpenDiceInput:
    value = schema.decode(
        schema.OpenDiceInputAsn1, data, "OpenDiceInput", schema.OPEN_DICE_INPUT_SHAPE
    )
    mode: OpenDiceMode | None = None
    if value.mode is not None:
        number = schema.enumerated(value.mode, "OpenDiceInput: mode")
        if number not in OpenDiceMode._value2member_map_:
            raise DiceExtensionError(f"OpenDiceInput: mode {number} is not 0..3")
        mode = OpenDiceMode(number)
    return OpenDiceInput(
        code_hash=value.code_hash,
        code_descriptor=value.code_descriptor,
        configuration_hash=value.configuration_hash,
        configuration_descriptor=value.configuration_descriptor,
        authority_hash=value.authority_hash,
        authority_descriptor=value.authority_descriptor,
        mode=mode,
        profile_name=value.profile_name,
    )
