"""EAR as a CWT (RFC 8392): the CBOR claims set of the EAR draft, signed as a COSE_Sign1.

The same :class:`~edgetrust.attest.ear_model.AttestationResult` as the JWT form, in the compact
form constrained relying parties prefer. Claim keys are those of the EAR draft we follow for the
JSON form too (draft-fv-rats-ear, editors' copy of 23 October 2023, section 3.4 "CBOR
Serialisation", the draft that defines the ``tag:github.com,2023:veraison/ear`` profile and the
dotted JSON names)::

    265  eat_profile     text, the same tag URI as in JSON (section 3.4 uses the text profile;
                         RFC 9711 section 4.3.2)
    6    iat             integer seconds, no floating point (RFC 8392 section 3.1.6)
    4    exp             optional, integer seconds (RFC 8392 section 3.1.4; not in the EAR CDDL,
                         carried as in the JWT form)
    1004 ear.verifier-id {0: developer text, 1: build text}
    10   eat_nonce       optional, a byte string of 8..64 bytes (RFC 9711 section 4.1)
    1002 ear.raw-evidence optional, a byte string
    266  submods         {+ text label => EAR-appraisal} (RFC 9711 section 4.2.18)

    EAR-appraisal:
    1000 ear.status      0 none, 2 affirming, 32 warning, 96 contraindicated
    1001 ear.trustworthiness-vector  {0 instance-identity, 1 configuration, 2 executables,
                         3 file-system, 4 hardware, 5 runtime-opaque, 6 storage-opaque,
                         7 sourced-data => -128..127}, non-empty
    1003 ear.appraisal-policy-id     optional text

The EAR keys 1000..1004 are the values the draft asks IANA for in its section 9.1 ("Claim Key:
1000" ...); they are not TBD in the draft but not yet registered either, so they are provisional
in the sense that IANA could assign others. The later WG drafts (draft-ietf-rats-ear) renamed the
JSON labels with underscores but kept these CBOR keys (1000 status, 1002 raw evidence, 1004
verifier id, per their CDDL as quoted by veraison/rust-ear).

Our ``edgetrust.appraisal`` extension (JSON name) is an unregistered claim, so in CBOR it takes a
key from the private space (draft section 4.1: "integer values less than -65536 for CWT"):
:data:`EXTENSION_KEY` = -75000 (clear of Veraison's -70000..-70002), a map of ``0`` reasons (array
of text), ``1`` ueid (bytes), ``2`` product, ``3`` firmware-version (text), ``4`` device-key (DER
SubjectPublicKeyInfo bytes). Claims we do not know are kept (``extensions``) and ignored, as EAR
requires of receivers; text-keyed extensions of the JSON form are carried under their text keys.

Signing: COSE_Sign1 (tag 18; the CWT tag 61 around it is accepted) with ES256 (P-256), ES384
(P-384) or EdDSA (Ed25519), ``alg`` in the protected header; verification binds the algorithm to
the key (no confusion, no MAC, no unprotected ``alg``), see :mod:`edgetrust.attest.cose`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import IntEnum
from typing import Any, Final, TypeAlias, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgetrust.attest import cbor, cose
from edgetrust.attest.ear_model import (
    DEFAULT_CLOCK_SKEW,
    EAR_PROFILE,
    Appraisal,
    AttestationResult,
    Category,
    Tier,
    TrustVector,
    VerifierId,
    claim_time,
    epoch_seconds,
    required_claim_time,
)
from edgetrust.errors import (
    AlgorithmError,
    ClaimError,
    MalformedError,
    OversizeError,
)

__all__ = [
    "CWT_TAG",
    "EAR_CWT_MEDIA_TYPE",
    "EXTENSION_KEY",
    "MAX_EAR_CWT_SIZE",
    "CwtKey",
    "EarCwtSigningKey",
    "EarCwtVerificationKey",
    "from_cwt_claims",
    "sign_ear_cwt",
    "to_cwt_claims",
    "verify_ear_cwt",
]

EAR_CWT_MEDIA_TYPE = f'application/eat+cwt; eat_profile="{EAR_PROFILE}"'
#: The CWT tag (RFC 8392 section 6), accepted around the COSE_Sign1.
CWT_TAG: Final = 61
#: Signed EARs larger than this are refused before any parsing.
MAX_EAR_CWT_SIZE: Final = cbor.DEFAULT_MAX_SIZE
#: Our appraisal extension's key (private space, see the module docstring).
EXTENSION_KEY: Final = -75000

EarCwtSigningKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
EarCwtVerificationKey: TypeAlias = (
    ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | x509.Certificate
)


class CwtKey(IntEnum):
    """The CBOR claim keys of an EAR (see the module docstring for their sources)."""

    EXP = 4
    IAT = 6
    NONCE = 10
    PROFILE = 265
    SUBMODS = 266
    STATUS = 1000
    TRUST_VECTOR = 1001
    RAW_EVIDENCE = 1002
    POLICY_ID = 1003
    VERIFIER_ID = 1004


_DEVELOPER: Final = 0
_BUILD: Final = 1
# inside our extension
_REASONS, _UEID, _PRODUCT, _FIRMWARE_VERSION, _DEVICE_KEY = range(5)
_NONCE_SIZES: Final = range(8, 65)
_ALGORITHMS: Final = frozenset({cose.Algorithm.ES256, cose.Algorithm.ES384, cose.Algorithm.EdDSA})
_CURVES: Final = frozenset({"secp256r1", "secp384r1"})
_TOP_LEVEL: Final = frozenset(
    {CwtKey.PROFILE, CwtKey.IAT, CwtKey.EXP, CwtKey.VERIFIER_ID, CwtKey.NONCE}
    | {CwtKey.RAW_EVIDENCE, CwtKey.SUBMODS}
)
_APPRAISAL: Final = frozenset({CwtKey.STATUS, CwtKey.TRUST_VECTOR, CwtKey.POLICY_ID, EXTENSION_KEY})
_T = TypeVar("_T")


# ---- claims set -------------------------------------------------------------------------------


def to_cwt_claims(result: AttestationResult) -> dict[int | str, Any]:
    """The CBOR claims set of ``result`` (integer keys; extensions under their own keys)."""
    claims: dict[int | str, Any] = {**result.extensions}
    claims[CwtKey.PROFILE] = result.profile
    claims[CwtKey.IAT] = epoch_seconds(result.issued_at)
    if result.expires_at is not None:
        claims[CwtKey.EXP] = epoch_seconds(result.expires_at)
    claims[CwtKey.VERIFIER_ID] = {
        _DEVELOPER: result.verifier_id.developer,
        _BUILD: result.verifier_id.build,
    }
    if result.nonce is not None:
        if len(result.nonce) not in _NONCE_SIZES:
            raise ClaimError(f"eat_nonce must be 8..64 bytes, got {len(result.nonce)}")
        claims[CwtKey.NONCE] = result.nonce
    if result.raw_evidence is not None:
        claims[CwtKey.RAW_EVIDENCE] = result.raw_evidence
    claims[CwtKey.SUBMODS] = {label: _appraisal_out(a) for label, a in result.submods.items()}
    return {int(k) if isinstance(k, IntEnum) else k: v for k, v in claims.items()}


def _appraisal_out(appraisal: Appraisal) -> dict[int | str, Any]:
    out: dict[int | str, Any] = {**appraisal.extensions}
    out[int(CwtKey.STATUS)] = int(appraisal.status)
    vector = {category.key: int(value) for category, value in appraisal.trust_vector.items()}
    if vector:
        out[int(CwtKey.TRUST_VECTOR)] = vector
    if appraisal.policy_id is not None:
        out[int(CwtKey.POLICY_ID)] = appraisal.policy_id
    ours: dict[int, Any] = {_REASONS: list(appraisal.reasons)}
    if appraisal.ueid is not None:
        ours[_UEID] = appraisal.ueid
    if appraisal.product is not None:
        ours[_PRODUCT] = appraisal.product
    if appraisal.firmware_version is not None:
        ours[_FIRMWARE_VERSION] = appraisal.firmware_version
    if appraisal.device_key is not None:
        ours[_DEVICE_KEY] = appraisal.device_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    out[EXTENSION_KEY] = ours
    return out


def from_cwt_claims(claims: object) -> AttestationResult:
    """Parse an EAR CBOR claims set (strict on the claims it knows, keeps the others)."""
    if not isinstance(claims, dict):
        raise ClaimError("EAR claims set is not a CBOR map")
    profile = claims.get(CwtKey.PROFILE)
    if profile != EAR_PROFILE:
        raise ClaimError(f"eat_profile (265) is {profile!r}, expected {EAR_PROFILE!r}")
    verifier = claims.get(CwtKey.VERIFIER_ID)
    if (
        not isinstance(verifier, dict)
        or not isinstance(verifier.get(_DEVELOPER), str)
        or not isinstance(verifier.get(_BUILD), str)
    ):
        raise ClaimError("ear.verifier-id (1004) must be a map with developer (0), build (1) text")
    submods = claims.get(CwtKey.SUBMODS)
    if not isinstance(submods, dict) or not submods:
        raise ClaimError("submods (266) must be a non-empty map")
    return AttestationResult(
        profile=EAR_PROFILE,
        issued_at=required_claim_time(claims, CwtKey.IAT, "iat (6)"),
        expires_at=claim_time(claims, CwtKey.EXP, "exp (4)"),
        verifier_id=VerifierId(developer=verifier[_DEVELOPER], build=verifier[_BUILD]),
        nonce=_nonce(claims),
        raw_evidence=_optional(claims, CwtKey.RAW_EVIDENCE, bytes, "ear.raw-evidence (1002)"),
        submods={_label(label): _appraisal_in(label, a) for label, a in submods.items()},
        extensions={k: v for k, v in claims.items() if k not in _TOP_LEVEL},
    )


def _nonce(claims: Mapping[Any, Any]) -> bytes | None:
    nonce = _optional(claims, CwtKey.NONCE, bytes, "eat_nonce (10)")
    if nonce is not None and len(nonce) not in _NONCE_SIZES:
        raise ClaimError(f"eat_nonce (10) must be 8..64 bytes, got {len(nonce)}")
    return nonce


def _optional(claims: Mapping[Any, Any], key: int, kind: type[_T], name: str) -> _T | None:
    if key not in claims:
        return None
    value = claims[key]
    if not isinstance(value, kind):
        what = "a byte string" if kind is bytes else "a text string"
        raise ClaimError(f"{name} must be {what}")
    return value


def _label(label: object) -> str:
    if not isinstance(label, str):
        raise ClaimError(f"submods (266): label {label!r} is not a text string")
    return label


def _appraisal_in(label: object, data: object) -> Appraisal:
    where = f"submods.{_label(label)}"
    if not isinstance(data, dict):
        raise ClaimError(f"{where}: an EAR-appraisal must be a map")
    if CwtKey.STATUS not in data:
        raise ClaimError(f"{where}: ear.status (1000) missing")
    status = data[CwtKey.STATUS]
    if isinstance(status, bool) or status not in {int(t) for t in Tier}:
        raise ClaimError(f"{where}: ear.status (1000) must be 0, 2, 32 or 96, got {status!r}")
    vector_data = data.get(CwtKey.TRUST_VECTOR)
    vector = TrustVector() if vector_data is None else _trust_vector(where, vector_data)
    ours = data.get(EXTENSION_KEY, {})
    if not isinstance(ours, dict):
        raise ClaimError(f"{where}: edgetrust.appraisal ({EXTENSION_KEY}) must be a map")
    reasons = ours.get(_REASONS, [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise ClaimError(f"{where}: reasons must be an array of text strings")
    return Appraisal(
        status=Tier(status),
        trust_vector=vector,
        policy_id=_optional(data, CwtKey.POLICY_ID, str, f"{where}: ear.appraisal-policy-id"),
        reasons=tuple(reasons),
        ueid=_optional(ours, _UEID, bytes, f"{where}: ueid"),
        product=_optional(ours, _PRODUCT, str, f"{where}: product"),
        firmware_version=_optional(ours, _FIRMWARE_VERSION, str, f"{where}: firmware-version"),
        device_key=_device_key(where, _optional(ours, _DEVICE_KEY, bytes, f"{where}: device-key")),
        extensions={k: v for k, v in data.items() if k not in _APPRAISAL},
    )


def _trust_vector(where: str, data: object) -> TrustVector:
    if not isinstance(data, dict) or not data:
        raise ClaimError(f"{where}: ear.trustworthiness-vector (1001) must be a non-empty map")
    categories = list(Category)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < len(categories):
            raise ClaimError(f"{where}: ear.trustworthiness-vector: unknown category {key!r}")
        values[categories[key].value.replace("-", "_")] = value
    return TrustVector(**values)


def _device_key(where: str, spki: bytes | None) -> Any:
    if spki is None:
        return None
    try:
        return serialization.load_der_public_key(spki)
    except (ValueError, TypeError) as e:
        raise ClaimError(f"{where}: device-key is not a public key") from e


# ---- signed form: COSE_Sign1 ------------------------------------------------------------------


def sign_ear_cwt(
    result: AttestationResult, key: EarCwtSigningKey, *, kid: str | bytes | None = None
) -> bytes:
    """Serialise and sign ``result`` as a CWT (tagged COSE_Sign1).

    ES256 for a P-256 key, ES384 for P-384, EdDSA for Ed25519; a text ``kid`` is UTF-8 encoded.
    """
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise AlgorithmError("EAR signing needs an EC P-256 or P-384 or an Ed25519 private key")
    _check_key(key.public_key())
    kid_bytes = kid.encode("utf-8") if isinstance(kid, str) else kid
    return cose.sign1(cbor.dumps(to_cwt_claims(result)), key, kid=kid_bytes)


def _check_key(key: object) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise AlgorithmError(f"EAR keys are P-256, P-384 or Ed25519, not {key.curve.name}")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise AlgorithmError("EAR verification needs an EC P-256 or P-384 or an Ed25519 public key")


def verify_ear_cwt(
    token: bytes,
    public_key: EarCwtVerificationKey,
    *,
    now: dt.datetime | None = None,
    clock_skew: dt.timedelta = DEFAULT_CLOCK_SKEW,
) -> AttestationResult:
    """Verify a CWT EAR with the verifier's public key (or certificate) and return its result.

    With ``now``, an ``exp`` at or before ``now`` is refused
    (:class:`~edgetrust.errors.ExpiredError`), and so is an ``iat`` more than ``clock_skew``
    (default :data:`~edgetrust.attest.ear_model.DEFAULT_CLOCK_SKEW`, 60 s) after ``now``
    (:class:`~edgetrust.errors.ClaimError`). Without ``now`` neither time is checked.
    Raises :class:`~edgetrust.errors.SignatureError`, :class:`~edgetrust.errors.AlgorithmError`,
    :class:`~edgetrust.errors.MalformedError` (or its :class:`~edgetrust.errors.CBORError`),
    :class:`~edgetrust.errors.OversizeError` or :class:`~edgetrust.errors.ClaimError`.
    """
    key = _check_key(
        public_key.public_key() if isinstance(public_key, x509.Certificate) else public_key
    )
    if not isinstance(token, (bytes, bytearray, memoryview)):
        raise MalformedError("a CWT EAR is a byte string")
    data = bytes(token)
    if len(data) > MAX_EAR_CWT_SIZE:
        raise OversizeError(f"EAR CWT is {len(data)} bytes, more than {MAX_EAR_CWT_SIZE}")
    msg = cose.decode_sign1(data, outer_tags=(CWT_TAG,))
    if cose.HeaderLabel.ALG not in msg.protected:
        raise AlgorithmError("EAR CWT: alg must be in the protected header")
    if msg.alg not in _ALGORITHMS:
        raise AlgorithmError(f"EAR CWT: {msg.alg.name} is not ES256, ES384 or EdDSA")
    if msg.payload is None:
        raise MalformedError("EAR CWT has no payload (detached)")
    cose.verify_sign1(msg, key)
    result = from_cwt_claims(cbor.loads(msg.payload, expect=dict))
    if now is not None:
        result.check_times(now, clock_skew=clock_skew)
    return result
