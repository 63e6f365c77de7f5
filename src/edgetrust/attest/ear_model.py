"""The EAR data model (draft-fv-rats-ear; trust vector and tiers from draft-ietf-rats-ar4si):
trust tiers, the AR4SI trustworthiness vector, EAR-appraisals and the attestation result, with
the JSON claims set that the JWT form signs.

The serialisations and signatures live in :mod:`edgetrust.attest.ear` (JWT, the public facade)
and :mod:`edgetrust.attest.ear_cwt` (CWT); import the public names from
:mod:`edgetrust.attest.ear`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from edgetrust.attest.jws import b64url_decode, b64url_encode
from edgetrust.errors import ClaimError, EvidenceError, ExpiredError

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEVICE_SUBMOD",
    "EAR_PROFILE",
    "EXTENSION",
    "Appraisal",
    "AttestationResult",
    "Category",
    "Claim",
    "Tier",
    "TrustVector",
    "VerifierId",
]

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
#: How far an EAR's ``iat`` may be ahead of the verifying clock (the signer's clock may run fast).
DEFAULT_CLOCK_SKEW = dt.timedelta(seconds=60)
#: The submodule label under which appraise() reports the device.
DEVICE_SUBMOD = "device"
#: Our appraisal extension inside each EAR-appraisal (a map, as EAR requires of extensions).
EXTENSION = "edgetrust.appraisal"


class Tier(IntEnum):
    """AR4SI trustworthiness tiers; the value is the CBOR code point (and a lower bound)."""

    NONE = 0
    AFFIRMING = 2
    WARNING = 32
    CONTRAINDICATED = 96

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Tier:
        for tier in cls:
            if tier.label == label:
                return tier
        raise ClaimError(f"unknown trust tier {label!r}")

    @classmethod
    def of(cls, value: int) -> Tier:
        """The tier a trustworthiness claim value falls in (AR4SI section 2.3.3)."""
        if not -128 <= value <= 127:
            raise ClaimError(f"trustworthiness claim {value} is outside -128..127")
        if -1 <= value <= 1:
            return cls.NONE
        magnitude = value if value > 0 else -value - 1  # -2..-32 -> 1..31, like 2..31
        if magnitude < 32:
            return cls.AFFIRMING
        if magnitude < 96:
            return cls.WARNING
        return cls.CONTRAINDICATED


class Category(StrEnum):
    """The eight AR4SI trustworthiness claims, by their JSON names (CBOR keys 0..7 in order)."""

    INSTANCE_IDENTITY = "instance-identity"
    CONFIGURATION = "configuration"
    EXECUTABLES = "executables"
    FILE_SYSTEM = "file-system"
    HARDWARE = "hardware"
    RUNTIME_OPAQUE = "runtime-opaque"
    STORAGE_OPAQUE = "storage-opaque"
    SOURCED_DATA = "sourced-data"

    @property
    def key(self) -> int:
        return list(Category).index(self)


class Claim(IntEnum):
    """Named trustworthiness claim values (AR4SI section 2.3.4), shared across categories.

    Values below -96 are our own (non-standard, contraindicated tier), documented here.
    """

    VERIFIER_MALFUNCTION = -1
    NO_CLAIM = 0
    UNEXPECTED_EVIDENCE = 1
    # affirming
    TRUSTWORTHY_INSTANCE = 2  # instance-identity
    APPROVED_CONFIG = 2  # configuration
    APPROVED_RUNTIME = 2  # executables: all loaded code recognised and approved
    APPROVED_BOOT = 3  # executables: boot chain approved
    GENUINE_HARDWARE = 2  # hardware
    # warning
    UNSAFE_CONFIG = 32  # configuration with known vulnerabilities
    UNSAFE_RUNTIME = 32
    UNRECOGNIZED_RUNTIME = 33  # executables: something loaded is not recognised
    UNSAFE_HARDWARE = 32
    # contraindicated
    UNTRUSTWORTHY_INSTANCE = 96
    UNRECOGNIZED_INSTANCE = 97
    UNSUPPORTABLE_CONFIG = 96
    CONTRAINDICATED_RUNTIME = 96
    CONTRAINDICATED_HARDWARE = 96
    UNRECOGNIZED_HARDWARE = 97
    CRYPTO_VALIDATION_FAILED = 99
    # ours (non-standard contraindications, instance-identity)
    STALE_EVIDENCE = -97  # nonce missing/wrong, token too old, expired or from the future
    PROFILE_VIOLATION = -98  # required device-profile claims missing or ill-typed


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustVector:
    """An AR4SI trustworthiness vector; ``None`` means no claim made for that category."""

    instance_identity: int | None = None
    configuration: int | None = None
    executables: int | None = None
    file_system: int | None = None
    hardware: int | None = None
    runtime_opaque: int | None = None
    storage_opaque: int | None = None
    sourced_data: int | None = None

    def __post_init__(self) -> None:
        for category, value in self.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ClaimError(f"trust vector {category}: expected an integer")
            Tier.of(value)

    def items(self) -> Iterator[tuple[Category, int]]:
        for category in Category:
            value = getattr(self, _attr(category))
            if value is not None:
                yield category, value

    def get(self, category: Category) -> int | None:
        value: int | None = getattr(self, _attr(category))
        return value

    def with_claim(self, category: Category, value: int) -> TrustVector:
        """A copy with ``category`` set to ``value`` (AR4SI: keep the worst tier per category)."""
        current = self.get(category)
        if current is not None and Tier.of(current) >= Tier.of(value):
            return self
        return replace(self, **{_attr(category): int(value)})

    @property
    def tier(self) -> Tier:
        """The worst tier across the vector (NONE when empty)."""
        return max((Tier.of(v) for _, v in self.items()), default=Tier.NONE)

    def to_json(self) -> dict[str, int]:
        return {category.value: int(value) for category, value in self.items()}

    @classmethod
    def from_json(cls, data: object) -> TrustVector:
        if not isinstance(data, dict) or not data:
            raise ClaimError("ear.trustworthiness-vector: expected a non-empty object")
        values: dict[str, int] = {}
        for name, value in data.items():
            try:
                category = Category(name)
            except ValueError:
                raise ClaimError(f"ear.trustworthiness-vector: unknown category {name!r}") from None
            values[_attr(category)] = value
        return cls(**values)


def _attr(category: Category) -> str:
    return category.value.replace("-", "_")


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierId:
    """Who produced the result (AR4SI verifier identity): organisation and software build."""

    developer: str
    build: str

    def to_json(self) -> dict[str, str]:
        return {"developer": self.developer, "build": self.build}


@dataclass(frozen=True, slots=True, kw_only=True)
class Appraisal:
    """One EAR-appraisal (one attester): tier, vector, and our reasons and device facts."""

    status: Tier
    trust_vector: TrustVector
    policy_id: str | None = None
    reasons: tuple[str, ...] = ()
    ueid: bytes | None = None
    product: str | None = None
    firmware_version: str | None = None
    #: The device's key bound by the token's ``cnf`` claim (compare with the CSR key).
    device_key: PublicKeyTypes | None = None
    #: Claims we do not know: text keys (JSON), or text and integer keys (CWT).
    extensions: Mapping[str | int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status < self.trust_vector.tier:
            raise ClaimError(
                f"ear.status {self.status.label} is better than the trust vector's worst tier "
                f"{self.trust_vector.tier.label}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationResult:
    """An EAR: the verifier's signed statement about a device.

    ``submods`` holds one :class:`Appraisal` per attester; :func:`appraise` reports the device
    under :data:`DEVICE_SUBMOD`. A relying party should admit a device only when
    :attr:`affirming` is true (a ``warning`` or ``none`` status is not an admission).
    """

    submods: Mapping[str, Appraisal]
    verifier_id: VerifierId
    issued_at: dt.datetime
    expires_at: dt.datetime | None = None
    nonce: bytes | None = None
    raw_evidence: bytes | None = None
    profile: str = EAR_PROFILE
    #: Claims we do not know: text keys (JSON), or text and integer keys (CWT).
    extensions: Mapping[str | int, Any] = field(default_factory=dict)
    #: The evidence error that decided a contraindicated result (never serialised).
    error: EvidenceError | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.submods:
            raise ClaimError("an attestation result needs at least one submod")
        for when in (self.issued_at, self.expires_at):
            if when is not None and when.tzinfo is None:
                raise ValueError("attestation result times must be timezone-aware")

    # ---- the device's appraisal ---------------------------------------------------------------

    @property
    def device(self) -> Appraisal:
        """The device's appraisal: the ``device`` submod, or the only submod there is."""
        if DEVICE_SUBMOD in self.submods:
            return self.submods[DEVICE_SUBMOD]
        if len(self.submods) == 1:
            return next(iter(self.submods.values()))
        raise ClaimError(f"attestation result has no {DEVICE_SUBMOD!r} submod")

    @property
    def status(self) -> Tier:
        """The overall tier: the worst across all submods."""
        return max(appraisal.status for appraisal in self.submods.values())

    @property
    def affirming(self) -> bool:
        return self.status is Tier.AFFIRMING

    @property
    def trust_vector(self) -> TrustVector:
        return self.device.trust_vector

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(r for appraisal in self.submods.values() for r in appraisal.reasons)

    @property
    def ueid(self) -> bytes | None:
        return self.device.ueid

    @property
    def device_key(self) -> PublicKeyTypes | None:
        return self.device.device_key

    @property
    def product(self) -> str | None:
        return self.device.product

    def check_times(
        self, now: dt.datetime, *, clock_skew: dt.timedelta = DEFAULT_CLOCK_SKEW
    ) -> None:
        """Refuse an EAR that has expired at ``now`` (``exp`` at or before it:
        :class:`~edgetrust.errors.ExpiredError`) or was issued more than ``clock_skew`` after
        ``now`` (:class:`~edgetrust.errors.ClaimError`)."""
        if self.expires_at is not None and now >= self.expires_at:
            raise ExpiredError(f"EAR expired at {self.expires_at.isoformat()}")
        if self.issued_at > now + clock_skew:
            raise ClaimError(
                f"EAR issued in the future: iat {self.issued_at.isoformat()} is more than "
                f"{clock_skew.total_seconds():g} s after now {now.isoformat()}"
            )

    # ---- JSON claims set ----------------------------------------------------------------------

    def to_claims(self) -> dict[str, Any]:
        claims = _json_extensions(self.extensions)
        claims["eat_profile"] = self.profile
        claims["iat"] = epoch_seconds(self.issued_at)
        if self.expires_at is not None:
            claims["exp"] = epoch_seconds(self.expires_at)
        claims["ear.verifier-id"] = self.verifier_id.to_json()
        if self.nonce is not None:
            claims["eat_nonce"] = b64url_encode(self.nonce)
        if self.raw_evidence is not None:
            claims["ear.raw-evidence"] = b64url_encode(self.raw_evidence)
        claims["submods"] = {label: _appraisal_to_json(a) for label, a in self.submods.items()}
        return claims

    @classmethod
    def from_claims(cls, claims: object) -> AttestationResult:
        """Parse an EAR JSON claims set (strict on the claims it knows, keeps the others)."""
        if not isinstance(claims, dict):
            raise ClaimError("EAR claims set is not a JSON object")
        known = {"eat_profile", "iat", "exp", "ear.verifier-id", "eat_nonce", "ear.raw-evidence"}
        profile = claims.get("eat_profile")
        if profile != EAR_PROFILE:
            raise ClaimError(f"eat_profile is {profile!r}, expected {EAR_PROFILE!r}")
        verifier = claims.get("ear.verifier-id")
        if (
            not isinstance(verifier, dict)
            or not isinstance(verifier.get("developer"), str)
            or not isinstance(verifier.get("build"), str)
        ):
            raise ClaimError("ear.verifier-id must be an object with developer and build strings")
        submods = claims.get("submods")
        if not isinstance(submods, dict) or not submods:
            raise ClaimError("submods must be a non-empty object")
        return cls(
            profile=profile,
            issued_at=required_claim_time(claims, "iat", "iat"),
            expires_at=claim_time(claims, "exp", "exp"),
            verifier_id=VerifierId(developer=verifier["developer"], build=verifier["build"]),
            nonce=_optional_b64(claims, "eat_nonce"),
            raw_evidence=_optional_b64(claims, "ear.raw-evidence"),
            submods={str(label): _appraisal_from_json(label, a) for label, a in submods.items()},
            extensions={k: v for k, v in claims.items() if k not in known | {"submods"}},
        )

    def to_json(self) -> str:
        return json.dumps(self.to_claims(), indent=2)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_seconds(when: dt.datetime) -> int:
    """``when`` as a NumericDate (whole seconds since the epoch), as both serializations use."""
    return int((when - _EPOCH).total_seconds())


def claim_time(claims: Mapping[Any, Any], key: object, name: str) -> dt.datetime | None:
    """The NumericDate claim ``key`` of ``claims`` (JSON name or CWT integer key) as a datetime,
    None when absent. ``name`` is how errors call it."""
    if key not in claims:
        return None
    value = claims[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ClaimError(f"{name} must be an integer (seconds since the epoch)")
    try:
        return _EPOCH + dt.timedelta(seconds=value)
    except OverflowError:
        raise ClaimError(f"{name} is out of range") from None


def required_claim_time(claims: Mapping[Any, Any], key: object, name: str) -> dt.datetime:
    """:func:`claim_time` for a claim that must be there."""
    when = claim_time(claims, key, name)
    if when is None:
        raise ClaimError(f"{name} claim missing")
    return when


def _optional_b64(claims: Mapping[str, Any], name: str) -> bytes | None:
    if name not in claims:
        return None
    value = claims[name]
    if not isinstance(value, str):
        raise ClaimError(f"{name} must be a base64url string")
    return b64url_decode(value, what=name)


def _json_extensions(extensions: Mapping[str | int, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in extensions.items():
        if not isinstance(key, str):
            raise ClaimError(f"extension claim {key!r} has an integer key: no JSON name for it")
        out[key] = value
    return out


def _appraisal_to_json(appraisal: Appraisal) -> dict[str, Any]:
    out = _json_extensions(appraisal.extensions)
    out["ear.status"] = appraisal.status.label
    vector = appraisal.trust_vector.to_json()
    if vector:
        out["ear.trustworthiness-vector"] = vector
    if appraisal.policy_id is not None:
        out["ear.appraisal-policy-id"] = appraisal.policy_id
    ours: dict[str, Any] = {"reasons": list(appraisal.reasons)}
    if appraisal.ueid is not None:
        ours["ueid"] = b64url_encode(appraisal.ueid)
    if appraisal.product is not None:
        ours["product"] = appraisal.product
    if appraisal.firmware_version is not None:
        ours["firmware-version"] = appraisal.firmware_version
    if appraisal.device_key is not None:
        spki = appraisal.device_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        ours["device-key"] = b64url_encode(spki)
    out[EXTENSION] = ours
    return out


def _appraisal_from_json(label: object, data: object) -> Appraisal:
    if not isinstance(label, str) or not isinstance(data, dict):
        raise ClaimError("each submod must be an object under a text label")
    status = data.get("ear.status")
    if not isinstance(status, str):
        raise ClaimError(f"submods.{label}: ear.status missing")
    vector_data = data.get("ear.trustworthiness-vector")
    vector = TrustVector() if vector_data is None else TrustVector.from_json(vector_data)
    policy_id = data.get("ear.appraisal-policy-id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise ClaimError(f"submods.{label}: ear.appraisal-policy-id must be a string")
    ours = data.get(EXTENSION, {})
    if not isinstance(ours, dict):
        raise ClaimError(f"submods.{label}: {EXTENSION} must be an object")
    reasons = ours.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise ClaimError(f"submods.{label}: reasons must be a list of strings")
    for name in ("product", "firmware-version"):
        if name in ours and not isinstance(ours[name], str):
            raise ClaimError(f"submods.{label}: {name} must be a string")
    device_key = None
    spki = _optional_b64(ours, "device-key")
    if spki is not None:
        try:
            device_key = serialization.load_der_public_key(spki)
        except (ValueError, TypeError) as e:
            raise ClaimError(f"submods.{label}: device-key is not a public key") from e
    known = {"ear.status", "ear.trustworthiness-vector", "ear.appraisal-policy-id", EXTENSION}
    return Appraisal(
        status=Tier.from_label(status),
        trust_vector=vector,
        policy_id=policy_id,
        reasons=tuple(reasons),
        ueid=_optional_b64(ours, "ueid"),
        product=ours.get("product"),
        firmware_version=ours.get("firmware-version"),
        device_key=device_key,
        extensions={k: v for k, v in data.items() if k not in known},
    )
