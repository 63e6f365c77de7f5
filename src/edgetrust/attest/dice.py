"""Open Profile for DICE: CDI derivation, CDI key pairs and identifiers, byte-exact.

This follows the Open DICE specification (google/open-dice, ``docs/specification.md``, v2.x) and
its reference implementation (``src/dice.c`` and the BoringSSL ECDSA ops), so that our outputs
equal its known-answer values (``include/dice/known_test_values.h``):

* Attestation CDI: ``KDF(32, CDI_Attest, H(code ‖ config ‖ authority ‖ mode ‖ hidden),
  "CDI_Attest")``
* Sealing CDI: ``KDF(32, CDI_Seal, H(authority ‖ mode ‖ hidden), "CDI_Seal")``
* key-pair seed:   ``KDF(32, CDI_Attest, ASYM_SALT, "Key Pair")``
* identifier:      ``KDF(20, public key, ID_SALT, "ID")`` with the big-endian top bit cleared

where ``H`` is SHA-512 and ``KDF`` is HKDF-SHA-512 (spec, "Cryptography"). The configuration
input is either a 64-byte inline value or ``H(descriptor)`` (spec, "Input Values" item 2;
``DiceMainFlow`` hashes the descriptor with the same hash op).

Key pairs ("Asymmetric Key Pair Derivation"): for Ed25519 the seed is the private key. For ECDSA
P-256 the spec recommends seeding an HMAC_DRBG as in RFC 6979 section 3.2; Open DICE's BoringSSL
ops do so with HMAC-SHA-512, a 64-byte V and K and rejection sampling against the group order --
:func:`_p256_scalar_from_seed` reproduces that algorithm step by step.

Identifiers are derived over Open DICE's public-key encoding: the 32 raw bytes for Ed25519 and
the 64 bytes ``x ‖ y`` (no SEC1 ``0x04`` prefix) for P-256.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edgetrust.errors import DiceInputError

__all__ = [
    "ASYM_SALT",
    "CDI_SIZE",
    "HASH_SIZE",
    "HIDDEN_SIZE",
    "ID_SALT",
    "ID_SIZE",
    "INLINE_CONFIG_SIZE",
    "ConfigType",
    "DiceKey",
    "DiceMode",
    "DicePublicKey",
    "InputValues",
    "KeyAlg",
    "MainFlowResult",
    "derive_cdis",
    "derive_private_key",
    "dice_id",
    "hash_input",
    "main_flow",
    "open_dice_public_key",
    "public_key_bytes",
]

#: Sizes fixed by the Open DICE profile (``include/dice/config.h`` defaults).
CDI_SIZE: Final = 32
HASH_SIZE: Final = 64
INLINE_CONFIG_SIZE: Final = 64
HIDDEN_SIZE: Final = 64
ID_SIZE: Final = 20
_SEED_SIZE: Final = 32
#: A UDS is "at least 256 bits" (spec, "UDS Details"); we accept 32- or 64-byte secrets.
_SECRET_SIZES: Final = (32, 64)

#: Spec, "Cryptography" / "Salt": random constants used as HKDF salts.
ASYM_SALT: Final = bytes.fromhex(
    "63B6A04D2C077FC10F639F21DA793844356CC2B0B441B3A77124035C03F8E1BE"
    "6035D31F282821A7450A02222AB1B3CFF1679B05AB1CA5D1AFFB789CCD2B0B3B"
)
ID_SALT: Final = bytes.fromhex(
    "DBDBAEBC8020DA9FF0DD5A24C83AA5A54286DFC263031E329B4DA148430659FE"
    "62CDB5B7E1E00FC680306711EB444AF77209359496FCFF1DB9520BA51C7B29EA"
)

#: Order n of the P-256 group (SEC 2, secp256r1).
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

DiceKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
DicePublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class DiceMode(IntEnum):
    """The one-byte mode decision (spec, "Mode Value Details")."""

    NOT_CONFIGURED = 0
    NORMAL = 1
    DEBUG = 2
    RECOVERY = 3


class KeyAlg(StrEnum):
    """Signature algorithm of the CDI key pairs."""

    ED25519 = "ed25519"
    P256 = "p256"


class ConfigType(StrEnum):
    """How the configuration input is given (``DiceConfigType`` in ``include/dice/dice.h``)."""

    INLINE = "inline"
    DESCRIPTOR = "descriptor"


def _require_bytes(name: str, value: object, size: int) -> bytes:
    if not isinstance(value, bytes):
        raise DiceInputError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != size:
        raise DiceInputError(f"{name} must be {size} bytes, got {len(value)}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class InputValues:
    """The DICE input values of one layer transition (spec, "Input Values").

    ``code_hash`` and ``authority_hash`` are 64-byte hashes (SHA-512 by convention). The
    configuration is either ``config_value`` (64 bytes, ``config_type=INLINE``) or
    ``config_descriptor`` (any bytes, ``config_type=DESCRIPTOR``; SHA-512 of it enters the CDI);
    exactly the one named by ``config_type`` must be given. ``hidden`` is optional and zero
    when unused, as is ``authority_hash`` when no verified-boot authority exists.
    """

    code_hash: bytes
    mode: DiceMode
    config_type: ConfigType = ConfigType.INLINE
    config_value: bytes | None = None
    config_descriptor: bytes | None = None
    authority_hash: bytes = bytes(HASH_SIZE)
    hidden: bytes = bytes(HIDDEN_SIZE)

    def __post_init__(self) -> None:
        _require_bytes("code_hash", self.code_hash, HASH_SIZE)
        _require_bytes("authority_hash", self.authority_hash, HASH_SIZE)
        _require_bytes("hidden", self.hidden, HIDDEN_SIZE)
        # Only the four modes the spec defines; an out-of-range mode is an input error here
        # (the spec's "treat as not configured" rule is for verifiers reading certificates).
        if isinstance(self.mode, bool) or not isinstance(self.mode, int):
            raise DiceInputError(f"mode must be a DiceMode, not {type(self.mode).__name__}")
        try:
            object.__setattr__(self, "mode", DiceMode(self.mode))
        except ValueError as e:
            raise DiceInputError(f"mode must be 0..3, got {int(self.mode)}") from e
        try:
            config_type = ConfigType(self.config_type)
        except ValueError as e:
            raise DiceInputError(
                f"config_type must be 'inline' or 'descriptor', got {self.config_type!r}"
            ) from e
        object.__setattr__(self, "config_type", config_type)
        if config_type is ConfigType.INLINE:
            if self.config_value is None:
                raise DiceInputError("an inline configuration needs config_value (64 bytes)")
            _require_bytes("config_value", self.config_value, INLINE_CONFIG_SIZE)
            if self.config_descriptor is not None:
                raise DiceInputError("config_descriptor given with an inline configuration")
        else:
            if self.config_descriptor is None:
                raise DiceInputError("a descriptor configuration needs config_descriptor")
            if not isinstance(self.config_descriptor, bytes):
                raise DiceInputError(
                    f"config_descriptor must be bytes, not {type(self.config_descriptor).__name__}"
                )
            if self.config_value is not None:
                raise DiceInputError("config_value given with a descriptor configuration")

    @property
    def config_input(self) -> bytes:
        """The 64-byte configuration input that enters the attestation CDI."""
        if self.config_type is ConfigType.INLINE and self.config_value is not None:
            return self.config_value
        return hash_input(self.config_descriptor or b"")


def hash_input(data: bytes) -> bytes:
    """``H`` of the profile: SHA-512 (used for code images and configuration descriptors)."""
    return hashlib.sha512(data).digest()


def _kdf(length: int, ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """``KDF`` of the profile: HKDF-SHA-512 (RFC 5869), extract and expand."""
    return HKDF(algorithm=hashes.SHA512(), length=length, salt=salt, info=info).derive(ikm)


def _require_secret(name: str, value: object) -> bytes:
    if not isinstance(value, bytes):
        raise DiceInputError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) not in _SECRET_SIZES:
        raise DiceInputError(f"{name} must be 32 or 64 bytes, got {len(value)}")
    return value


def _derive_cdis(ikm_attest: bytes, ikm_seal: bytes, inputs: InputValues) -> tuple[bytes, bytes]:
    # DiceMainFlow: one buffer code | config | authority | mode | hidden; the attestation input
    # hash covers all of it, the sealing input hash only authority | mode | hidden.
    stable = inputs.authority_hash + bytes([inputs.mode]) + inputs.hidden
    attest_salt = hash_input(inputs.code_hash + inputs.config_input + stable)
    seal_salt = hash_input(stable)
    return (
        _kdf(CDI_SIZE, ikm_attest, attest_salt, b"CDI_Attest"),
        _kdf(CDI_SIZE, ikm_seal, seal_salt, b"CDI_Seal"),
    )


def derive_cdis(cdi_attest: bytes, cdi_seal: bytes, inputs: InputValues) -> tuple[bytes, bytes]:
    """The next ``(CDI_Attest, CDI_Seal)`` from the current ones and the layer's inputs.

    The current CDIs are 32 bytes; for the first transition they are the UDS (32 or 64 bytes:
    the spec uses the UDS as the input key material of the same KDF).
    """
    _require_secret("cdi_attest", cdi_attest)
    _require_secret("cdi_seal", cdi_seal)
    if not isinstance(inputs, InputValues):
        raise DiceInputError(f"inputs must be InputValues, not {type(inputs).__name__}")
    return _derive_cdis(cdi_attest, cdi_seal, inputs)


def _hmac512(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha512")


def _p256_scalar_from_seed(seed: bytes) -> int:
    """Open DICE's deterministic P-256 private scalar (BoringSSL ECDSA ops, ``derivePrivateKey``).

    RFC 6979 section 3.2 with HMAC-SHA-512 as the DRBG, ``V`` and ``K`` of 64 bytes, the seed
    in place of ``int2octets(x) ‖ bits2octets(h1)``, and the candidate taken from the first
    32 bytes of ``V``; candidates that are zero or not below the group order are rejected.
    """
    v = b"\x01" * 64  # step b
    k = b"\x00" * 64  # step c
    k = _hmac512(k, v + b"\x00" + seed)  # step d
    v = _hmac512(k, v)  # step e
    k = _hmac512(k, v + b"\x01" + seed)  # step f
    while True:
        v = _hmac512(k, v)  # step g (Open DICE runs it inside the loop)
        v = _hmac512(k, v)  # step h.2: T = V (one block is enough for 32 bytes)
        candidate = int.from_bytes(v[:32], "big")
        k = _hmac512(k, v + b"\x00")  # step h.3 (V is refreshed at the top of the loop)
        if 0 < candidate < _P256_ORDER:
            return candidate


def derive_private_key(cdi_attest: bytes, alg: KeyAlg = KeyAlg.ED25519) -> DiceKey:
    """The CDI private key: ``ASYM_KDF(cdi_attest)`` for ``alg``.

    ``cdi_attest`` is an attestation CDI (32 bytes) or, for the UDS key pair of the spec
    ("Deriving Asymmetric Key Pairs"), the UDS (32 or 64 bytes).
    """
    _require_secret("cdi_attest", cdi_attest)
    try:
        alg = KeyAlg(alg)
    except ValueError as e:
        raise DiceInputError(f"unsupported key algorithm {alg!r} (ed25519, p256)") from e
    seed = _kdf(_SEED_SIZE, cdi_attest, ASYM_SALT, b"Key Pair")
    if alg is KeyAlg.ED25519:
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return ec.derive_private_key(_p256_scalar_from_seed(seed), ec.SECP256R1())


def _public(key: DiceKey | DicePublicKey) -> DicePublicKey:
    if isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        return key.public_key()
    if isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        return key
    raise DiceInputError(f"not an Ed25519 or P-256 key: {type(key).__name__}")


def _require_p256(key: ec.EllipticCurvePublicKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise DiceInputError(f"only P-256 ECDSA keys are DICE keys here, not {key.curve.name}")


def public_key_bytes(key: DiceKey | DicePublicKey) -> bytes:
    """The public key as raw 32 bytes (Ed25519) or an uncompressed SEC1 point (P-256, 65 bytes)."""
    public = _public(key)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    _require_p256(public)
    return public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def open_dice_public_key(key: DiceKey | DicePublicKey) -> bytes:
    """The public key as Open DICE hashes it for IDs: raw 32 bytes, or ``x ‖ y`` for P-256."""
    raw = public_key_bytes(key)
    return raw if len(raw) == 32 else raw[1:]


def dice_id(public_key: bytes | DiceKey | DicePublicKey) -> bytes:
    """The 20-byte Open DICE identifier of a public key (spec, "Deriving Identifiers").

    ``public_key`` is a key object, or its bytes: raw Ed25519 (32), P-256 ``x ‖ y`` (64, Open
    DICE's form) or an uncompressed SEC1 P-256 point (65, as :func:`public_key_bytes` returns;
    the ``0x04`` prefix is dropped so both byte forms give Open DICE's ID).
    """
    if isinstance(public_key, bytes):
        if len(public_key) == 65 and public_key[0] == 0x04:
            material = public_key[1:]
        elif len(public_key) in (32, 64):
            material = public_key
        else:
            raise DiceInputError(
                "public key bytes must be 32 (Ed25519), 64 (P-256 x||y) or 65 "
                f"(uncompressed SEC1) long, got {len(public_key)}"
            )
    else:
        material = open_dice_public_key(public_key)
    ident = bytearray(_kdf(ID_SIZE, material, ID_SALT, b"ID"))
    ident[0] &= 0x7F  # keep the ASN.1 INTEGER positive without padding
    return bytes(ident)


@dataclass(frozen=True, slots=True, kw_only=True)
class MainFlowResult:
    """What one Open DICE transition yields (``DiceMainFlow`` without the certificate)."""

    cdi_attest: bytes
    cdi_seal: bytes
    #: The next layer's CDI key (subject of the CDI certificate).
    subject_key: DiceKey
    #: The current layer's CDI key (or the UDS key): the certificate's authority.
    authority_key: DiceKey
    subject_id: bytes
    authority_id: bytes

    @property
    def subject_public_key(self) -> bytes:
        return public_key_bytes(self.subject_key)


def main_flow(
    cdi_attest: bytes, cdi_seal: bytes, inputs: InputValues, alg: KeyAlg = KeyAlg.ED25519
) -> MainFlowResult:
    """One DICE transition: next CDIs, subject and authority key pairs and their IDs."""
    next_attest, next_seal = derive_cdis(cdi_attest, cdi_seal, inputs)
    subject = derive_private_key(next_attest, alg)
    authority = derive_private_key(cdi_attest, alg)
    return MainFlowResult(
        cdi_attest=next_attest,
        cdi_seal=next_seal,
        subject_key=subject,
        authority_key=authority,
        subject_id=dice_id(subject),
        authority_id=dice_id(authority),
    )
