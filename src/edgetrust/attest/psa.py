"""Arm PSA attestation tokens: RFC 9783 and the older PSA IoT profile 1 that TF-M devices emit.

Both are CWT claims-sets in a COSE_Sign1 (ES256/384/512) or COSE_Mac0 (HMAC). The variants differ
in their claim keys:

* RFC 9783 (``tag:psacertified.org,2023:psa#tfm``, also the older ``http://arm.com/psa/2.0.0``):
  EAT claims for nonce (10), instance ID (ueid, 256), profile (265) and boot seed (bootseed, 268),
  plus PSA claims 2394..2400 (client ID, security lifecycle, implementation ID, legacy boot seed,
  certification reference, software components, verification service indicator).
* PSA IoT profile 1 (``PSA_IOT_PROFILE_1``): private-use keys -75000..-75010.

A token using any -75000..-75010 key is read as profile 1. Mandatory claims are checked per
variant (:func:`decode_psa_claims`); unknown claims are kept in :attr:`PsaClaims.extra`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final

from edgetrust.attest import cbor, cose
from edgetrust.attest.cose import Mac0Message, Sign1Message
from edgetrust.attest.eat import jsonable
from edgetrust.errors import ClaimError, NonceError

__all__ = [
    "PSA_IOT_PROFILE_1",
    "PSA_PROFILE_2_0_0",
    "PSA_PROFILE_TFM",
    "PsaClaim",
    "PsaClaims",
    "PsaProfile1Claim",
    "PsaVariant",
    "SoftwareComponent",
    "decode_psa",
    "decode_psa_claims",
    "encode_psa_claims",
    "make_psa",
    "verify_psa",
]

PSA_PROFILE_TFM: Final = "tag:psacertified.org,2023:psa#tfm"
PSA_PROFILE_2_0_0: Final = "http://arm.com/psa/2.0.0"
PSA_IOT_PROFILE_1: Final = "PSA_IOT_PROFILE_1"


class PsaClaim(IntEnum):
    """RFC 9783 claim keys (EAT keys where PSA reuses an EAT claim)."""

    NONCE = 10
    INSTANCE_ID = 256
    PROFILE = 265
    BOOT_SEED = 268
    CLIENT_ID = 2394
    SECURITY_LIFECYCLE = 2395
    IMPLEMENTATION_ID = 2396
    LEGACY_BOOT_SEED = 2397
    CERTIFICATION_REFERENCE = 2398
    SOFTWARE_COMPONENTS = 2399
    VERIFICATION_SERVICE_INDICATOR = 2400


class PsaProfile1Claim(IntEnum):
    """PSA IoT profile 1 claim keys (the ``arm_psa_*`` private-use range)."""

    PROFILE = -75000
    CLIENT_ID = -75001
    SECURITY_LIFECYCLE = -75002
    IMPLEMENTATION_ID = -75003
    BOOT_SEED = -75004
    HARDWARE_VERSION = -75005
    SOFTWARE_COMPONENTS = -75006
    NO_SW_MEASUREMENTS = -75007
    NONCE = -75008
    INSTANCE_ID = -75009
    VERIFICATION_SERVICE_INDICATOR = -75010


class PsaVariant(StrEnum):
    RFC9783 = "rfc9783"
    PROFILE1 = "psa-iot-profile-1"


_NAMES: Final = {
    "nonce": "eat_nonce",
    "instance_id": "ueid",
    "profile": "eat_profile",
    "boot_seed": "psa-boot-seed",
    "client_id": "psa-client-id",
    "security_lifecycle": "psa-security-lifecycle",
    "implementation_id": "psa-implementation-id",
    "certification_reference": "psa-certification-reference",
    "hardware_version": "psa-hardware-version",
    "software_components": "psa-software-components",
    "no_sw_measurements": "psa-no-sw-measurements",
    "verification_service_indicator": "psa-verification-service-indicator",
}
_LIFECYCLE: Final = {
    0x00: "unknown",
    0x10: "assembly-and-test",
    0x20: "psa-rot-provisioning",
    0x30: "secured",
    0x40: "non-psa-rot-debug",
    0x50: "recoverable-psa-rot-debug",
    0x60: "decommissioned",
}
_HASH_SIZES: Final = (32, 48, 64)
_CERT_REF: Final = re.compile(r"[0-9]{13}(-[0-9]{5})?")
_HW_VERSION: Final = re.compile(r"[0-9]{13}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftwareComponent:
    """One entry of the software components claim."""

    measurement_value: bytes
    measurement_type: str | None = None
    version: str | None = None
    signer_id: bytes | None = None
    measurement_description: str | None = None

    def to_cbor(self) -> dict[int, Any]:
        fields = {
            1: self.measurement_type,
            2: self.measurement_value,
            4: self.version,
            5: self.signer_id,
            6: self.measurement_description,
        }
        return {label: value for label, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class PsaClaims:
    """Typed PSA claims of either variant."""

    variant: PsaVariant
    nonce: bytes
    instance_id: bytes
    implementation_id: bytes
    client_id: int
    security_lifecycle: int
    profile: str | None = None
    boot_seed: bytes | None = None
    certification_reference: str | None = None
    hardware_version: str | None = None
    software_components: tuple[SoftwareComponent, ...] | None = None
    no_sw_measurements: int | None = None
    verification_service_indicator: str | None = None
    extra: Mapping[int | str, Any] = field(default_factory=dict)

    @property
    def lifecycle_state(self) -> str:
        """The security lifecycle state name (major part of the lifecycle value)."""
        return _LIFECYCLE.get(self.security_lifecycle >> 8, "invalid")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"psa-variant": str(self.variant)}
        for attr, name in _NAMES.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if attr == "software_components":
                value = [
                    {
                        "measurement-type": c.measurement_type,
                        "measurement-value": c.measurement_value.hex(),
                        "version": c.version,
                        "signer-id": None if c.signer_id is None else c.signer_id.hex(),
                        "measurement-description": c.measurement_description,
                    }
                    for c in value
                ]
            out[name] = jsonable(value)
        out["psa-security-lifecycle-state"] = self.lifecycle_state
        for key, value in self.extra.items():
            out[str(key)] = jsonable(value)
        return out


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bytes(value: object, what: str, sizes: tuple[int, ...] | range) -> bytes:
    if not isinstance(value, bytes):
        raise ClaimError(f"PSA claim {what} must be a byte string")
    if len(value) not in sizes:
        raise ClaimError(f"PSA claim {what} has {len(value)} bytes (allowed: {list(sizes)})")
    return value


def _text(value: object, what: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str):
        raise ClaimError(f"PSA claim {what} must be text")
    if pattern is not None and not pattern.fullmatch(value):
        raise ClaimError(f"PSA claim {what} is malformed: {value!r}")
    return value


def _lifecycle(value: object) -> int:
    if not _is_int(value) or not 0 <= value <= 0xFFFF:  # type: ignore[operator]
        raise ClaimError("PSA claim security lifecycle must be an unsigned 16-bit integer")
    if value >> 8 not in _LIFECYCLE:  # type: ignore[operator]
        raise ClaimError(f"PSA security lifecycle 0x{value:04x} is not a defined state")
    return value  # type: ignore[return-value]


def _client_id(value: object) -> int:
    if not _is_int(value) or not -(2**31) <= value < 2**31:  # type: ignore[operator]
        raise ClaimError("PSA claim client ID must be a 32-bit signed integer")
    return value  # type: ignore[return-value]


def _components(value: object, *, signer_required: bool) -> tuple[SoftwareComponent, ...]:
    if not cbor.is_array(value) or not value:
        raise ClaimError("PSA claim software components must be a non-empty array")
    out = []
    for entry in value:  # type: ignore[attr-defined]
        if not cbor.is_map(entry):
            raise ClaimError("each PSA software component must be a map")
        if 2 not in entry:
            raise ClaimError("a PSA software component lacks its measurement value (2)")
        if signer_required and 5 not in entry:
            raise ClaimError("a PSA software component lacks its signer ID (5)")
        out.append(
            SoftwareComponent(
                measurement_value=_bytes(entry[2], "measurement value", _HASH_SIZES),
                measurement_type=_opt(entry.get(1), lambda v: _text(v, "measurement type")),
                version=_opt(entry.get(4), lambda v: _text(v, "version")),
                signer_id=_opt(entry.get(5), lambda v: _bytes(v, "signer ID", _HASH_SIZES)),
                measurement_description=_opt(
                    entry.get(6), lambda v: _text(v, "measurement description")
                ),
            )
        )
    return tuple(out)


def _opt(value: object, check: Any) -> Any:
    return None if value is None else check(value)


def _is_profile1(claims: Mapping[Any, Any]) -> bool:
    return any(_is_int(k) and -75010 <= k <= -75000 for k in claims)


def decode_psa_claims(claims: Mapping[Any, Any]) -> PsaClaims:
    """Typed PSA claims from a decoded claims-set map, mandatory claims checked per variant."""
    if not cbor.is_map(claims):
        raise ClaimError("the PSA claims-set must be a map")
    c: dict[Any, Any] = dict(claims)
    if _is_profile1(c):
        return _decode_profile1(c)
    return _decode_rfc9783(c)


def _require(c: Mapping[Any, Any], keys: Mapping[str, int], variant: PsaVariant) -> None:
    missing = [name for name, key in keys.items() if key not in c]
    if missing:
        raise ClaimError(f"PSA token ({variant}) lacks mandatory claim(s): {', '.join(missing)}")


def _decode_rfc9783(c: dict[Any, Any]) -> PsaClaims:
    k = PsaClaim
    _require(
        c,
        {
            "eat_nonce": k.NONCE,
            "ueid": k.INSTANCE_ID,
            "eat_profile": k.PROFILE,
            "psa-implementation-id": k.IMPLEMENTATION_ID,
            "psa-client-id": k.CLIENT_ID,
            "psa-security-lifecycle": k.SECURITY_LIFECYCLE,
            "psa-software-components": k.SOFTWARE_COMPONENTS,
        },
        PsaVariant.RFC9783,
    )
    if k.BOOT_SEED in c and k.LEGACY_BOOT_SEED in c:
        raise ClaimError("PSA token carries both bootseed (268) and psa-boot-seed (2397)")
    boot_seed = c.get(k.BOOT_SEED, c.get(k.LEGACY_BOOT_SEED))
    known = {int(key) for key in k}
    return PsaClaims(
        variant=PsaVariant.RFC9783,
        nonce=_bytes(c[k.NONCE], "nonce", _HASH_SIZES),
        instance_id=_instance_id(c[k.INSTANCE_ID]),
        profile=_text(c[k.PROFILE], "profile"),
        implementation_id=_bytes(c[k.IMPLEMENTATION_ID], "implementation ID", (32,)),
        client_id=_client_id(c[k.CLIENT_ID]),
        security_lifecycle=_lifecycle(c[k.SECURITY_LIFECYCLE]),
        boot_seed=_opt(boot_seed, lambda v: _bytes(v, "boot seed", range(8, 33))),
        certification_reference=_opt(
            c.get(k.CERTIFICATION_REFERENCE),
            lambda v: _text(v, "certification reference", _CERT_REF),
        ),
        software_components=_components(c[k.SOFTWARE_COMPONENTS], signer_required=True),
        verification_service_indicator=_opt(
            c.get(k.VERIFICATION_SERVICE_INDICATOR),
            lambda v: _text(v, "verification service indicator"),
        ),
        extra={key: v for key, v in c.items() if key not in known},
    )


def _instance_id(value: object) -> bytes:
    instance = _bytes(value, "instance ID", (33,))
    if instance[0] != 0x01:
        raise ClaimError("PSA instance ID must be a RAND UEID (type byte 0x01)")
    return instance


def _decode_profile1(c: dict[Any, Any]) -> PsaClaims:
    k = PsaProfile1Claim
    _require(
        c,
        {
            "arm_psa_nonce": k.NONCE,
            "arm_psa_UEID": k.INSTANCE_ID,
            "arm_psa_implementation_id": k.IMPLEMENTATION_ID,
            "arm_psa_partition_id": k.CLIENT_ID,
            "arm_psa_security_lifecycle": k.SECURITY_LIFECYCLE,
            "arm_psa_boot_seed": k.BOOT_SEED,
        },
        PsaVariant.PROFILE1,
    )
    has_components = k.SOFTWARE_COMPONENTS in c
    if has_components == (k.NO_SW_MEASUREMENTS in c):
        raise ClaimError("PSA profile 1 needs exactly one of sw components / no-sw-measurements")
    no_sw = c.get(k.NO_SW_MEASUREMENTS)
    if no_sw is not None and (not _is_int(no_sw) or no_sw not in (0, 1)):
        raise ClaimError("PSA claim no-sw-measurements must be 0 or 1")
    known = {int(key) for key in k}
    return PsaClaims(
        variant=PsaVariant.PROFILE1,
        profile=_opt(c.get(k.PROFILE), lambda v: _text(v, "profile")),
        nonce=_bytes(c[k.NONCE], "nonce", _HASH_SIZES),
        instance_id=_instance_id(c[k.INSTANCE_ID]),
        implementation_id=_bytes(c[k.IMPLEMENTATION_ID], "implementation ID", (32,)),
        client_id=_client_id(c[k.CLIENT_ID]),
        security_lifecycle=_lifecycle(c[k.SECURITY_LIFECYCLE]),
        boot_seed=_bytes(c[k.BOOT_SEED], "boot seed", (32,)),
        hardware_version=_opt(
            c.get(k.HARDWARE_VERSION), lambda v: _text(v, "hardware version", _HW_VERSION)
        ),
        software_components=(
            _components(c[k.SOFTWARE_COMPONENTS], signer_required=False) if has_components else None
        ),
        no_sw_measurements=no_sw,
        verification_service_indicator=_opt(
            c.get(k.VERIFICATION_SERVICE_INDICATOR),
            lambda v: _text(v, "verification service indicator"),
        ),
        extra={key: v for key, v in c.items() if key not in known},
    )


def encode_psa_claims(claims: PsaClaims) -> dict[int | str, Any]:
    """The CBOR claims-set map of ``claims`` in its variant's keys."""
    rfc = claims.variant is PsaVariant.RFC9783
    k1, k2 = PsaClaim, PsaProfile1Claim
    pairs: list[tuple[int, Any]] = [
        (k1.NONCE if rfc else k2.NONCE, claims.nonce),
        (k1.INSTANCE_ID if rfc else k2.INSTANCE_ID, claims.instance_id),
        (k1.PROFILE if rfc else k2.PROFILE, claims.profile),
        (k1.IMPLEMENTATION_ID if rfc else k2.IMPLEMENTATION_ID, claims.implementation_id),
        (k1.CLIENT_ID if rfc else k2.CLIENT_ID, claims.client_id),
        (k1.SECURITY_LIFECYCLE if rfc else k2.SECURITY_LIFECYCLE, claims.security_lifecycle),
        (k1.BOOT_SEED if rfc else k2.BOOT_SEED, claims.boot_seed),
        (
            k1.SOFTWARE_COMPONENTS if rfc else k2.SOFTWARE_COMPONENTS,
            None
            if claims.software_components is None
            else [c.to_cbor() for c in claims.software_components],
        ),
        (
            k1.VERIFICATION_SERVICE_INDICATOR if rfc else k2.VERIFICATION_SERVICE_INDICATOR,
            claims.verification_service_indicator,
        ),
    ]
    if rfc:
        pairs.append((k1.CERTIFICATION_REFERENCE, claims.certification_reference))
    else:
        pairs += [
            (k2.HARDWARE_VERSION, claims.hardware_version),
            (k2.NO_SW_MEASUREMENTS, claims.no_sw_measurements),
        ]
    out: dict[int | str, Any] = {int(key): v for key, v in pairs if v is not None}
    out.update(claims.extra)
    return out


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def make_psa(
    claims: PsaClaims, key: cose.SigningKey, *, alg: cose.Algorithm | None = None
) -> bytes:
    """A PSA token: COSE_Sign1 for a private key, COSE_Mac0 for an HMAC key (both tagged)."""
    payload = cbor.dumps(encode_psa_claims(claims))
    if isinstance(key, cose.SymmetricKey):
        return cose.mac0(payload, key, alg=alg or cose.Algorithm.HMAC_256_256)
    return cose.sign1(payload, key, alg=alg)


def _message(token: bytes, max_size: int) -> Sign1Message | Mac0Message:
    # tagged: Sign1 (18) or Mac0 (17); untagged: read as a Sign1
    msg = cose.decode_message(token, untagged_as="sign1", max_size=max_size)
    if msg.payload is None:
        raise ClaimError("the PSA token has a detached payload")
    return msg


def _claims(msg: Sign1Message | Mac0Message, max_size: int) -> PsaClaims:
    return decode_psa_claims(cbor.loads(msg.payload or b"", max_size=max_size, expect=dict))


def decode_psa(
    token: bytes, *, max_size: int = cbor.DEFAULT_MAX_SIZE
) -> tuple[Sign1Message | Mac0Message, PsaClaims]:
    """Decode (do not verify) a PSA token; an untagged token is read as a COSE_Sign1."""
    msg = _message(token, max_size)
    return msg, _claims(msg, max_size)


def verify_psa(
    token: bytes,
    key: cose.VerificationKey | cose.PrivateKey,
    *,
    expected_nonce: bytes | None = None,
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> PsaClaims:
    """Verify a PSA token (signature/MAC, then mandatory claims, then nonce) and return its claims.

    PSA tokens carry no time claims: freshness comes from the nonce alone.
    """
    msg = _message(token, max_size)
    if isinstance(msg, Sign1Message):
        cose.verify_sign1(msg, key)
    else:
        cose.verify_mac0(msg, key)
    claims = _claims(msg, max_size)
    if expected_nonce is not None and not hmac.compare_digest(claims.nonce, expected_nonce):
        raise NonceError("the PSA token's nonce does not match the expected nonce")
    return claims
