"""Appraisal: DICE chain + EAT + reference values -> an EAR attestation result. Pure.

:func:`appraise` is the verifier's trusted core (RFC 9334 "appraisal policy for evidence"). It does
no I/O and never reads the clock: ``now`` is a parameter. Bad evidence never raises: it becomes a
``contraindicated`` :class:`~edgetrust.attest.ear.AttestationResult` whose reasons say exactly what
was wrong, with the deciding :class:`~edgetrust.errors.EvidenceError` kept in ``result.error``.
Only programmer or operator errors (a naive ``now``, malformed trust anchors:
:class:`~edgetrust.errors.ConfigError`) and :class:`~edgetrust.errors.ServiceError` escape.

Steps, in order (1-2 stop the appraisal: nothing in an unauthenticated token can be believed):

1. the certificate chain validates to one of ``anchors`` at ``now``
   (:func:`edgetrust.certs.chain.validate_chain`);
2. the token is a COSE_Sign1 EAT that verifies with the chain's **leaf** (alias) key;
3. device profile: ``eat_profile`` is :data:`~edgetrust.attest.eat.DEVICE_PROFILE` and the claims
   the profile requires are present;
4. freshness: the nonce equals ``expected_nonce`` (constant time); ``iat`` not in the future and
   not older than ``policy.max_age``; ``exp`` / ``nbf`` respected (all with ``policy.clock_skew``);
5. identity: the token's ``ueid`` equals the chain's tcg-dice-Ueid (the DeviceID certificate);
6. reference values: the product (by ``hwmodel``; ``oemid`` when the reference names one), the
   firmware version (``swversion``), then per reference layer the token measurement (same name)
   and, for DICE layers, the FWIDs of the alias certificate whose TcbInfo ``model`` is the layer
   name; measurements and TcbInfos the reference does not know are only a warning;
7. SVN >= the product's minimum per layer (the lowest SVN reported by TcbInfo and token counts);
8. debug and secure boot per the firmware's reference policy (``dbgstat``, ``oemboot`` and the
   TcbInfo operational flags), and no layer in not-configured or recovery mode (steps 6-8:
   :mod:`edgetrust.attest.conformance`);
9. ``cnf`` names the device's key: returned as ``result.device_key`` for the CSR comparison.

Reason codes (``reason`` or ``reason:<layer>``) and the AR4SI trust vector claim they set:

==================================  ==================  =====================================
reason                              category            value
==================================  ==================  =====================================
chain_malformed, chain_invalid      instance-identity   96  untrustworthy instance
chain_untrusted                     instance-identity   97  unrecognised instance
chain_expired                       instance-identity   96
token_malformed, signature_invalid, all appraised       99  cryptographic validation failed
algorithm_invalid, token_not_signed
profile_mismatch, claim_missing:X,  instance-identity   -98 (ours) profile violation
chain_ueid_missing
nonce_missing, nonce_mismatch,      instance-identity   -97 (ours) stale evidence
token_expired, token_too_old,
token_from_future, token_not_yet_valid
ueid_mismatch                       instance-identity   96
unknown_product, oemid_mismatch     hardware            97  unrecognised hardware
unknown_firmware_version            executables         96  contraindicated runtime
measurement_missing:L,              executables         96
measurement_mismatch:L,
measurement_unverifiable:L,
tcb_missing:L, fwid_mismatch:L,
tcb_ambiguous:L
svn_below_minimum:L, svn_missing:L  executables         96
measurement_unrecognized:N,         executables         33  unrecognised runtime (warning)
tcb_unrecognized:N
debug_enabled, secure_boot_disabled configuration       96  unsupportable configuration
tcb_not_configured:L, tcb_recovery:L
==================================  ==================  =====================================

A device that passes every check gets tier ``affirming`` with the vector
``{instance-identity: 2, configuration: 2, executables: 2, hardware: 2}`` (file-system,
runtime-opaque, storage-opaque and sourced-data are not appraised: no claim).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from edgetrust import __version__
from edgetrust.attest import cose, eat
from edgetrust.attest.conformance import (
    check_layers,
    check_state,
    check_svn,
    select_reference,
    tcb_infos,
)
from edgetrust.attest.ear import (
    DEVICE_SUBMOD,
    Appraisal,
    AttestationResult,
    Category,
    Claim,
    Tier,
    TrustVector,
    VerifierId,
)
from edgetrust.attest.products import ProductReference
from edgetrust.attest.reference import ReferenceValues
from edgetrust.certs.chain import ValidatedChain, validate_chain
from edgetrust.certs.loading import TrustAnchor
from edgetrust.errors import (
    AlgorithmError,
    AppraisalError,
    ASN1Error,
    ClaimError,
    ConfigError,
    EvidenceError,
    FreshnessError,
    NonceError,
    SignatureError,
    UntrustedAnchorError,
    ValidityError,
)

__all__ = ["AppraisalPolicy", "appraise"]

_POSITIVE = TrustVector(
    instance_identity=Claim.TRUSTWORTHY_INSTANCE,
    configuration=Claim.APPROVED_CONFIG,
    executables=Claim.APPROVED_RUNTIME,
    hardware=Claim.GENUINE_HARDWARE,
)
_CRYPTO_FAILED = TrustVector(
    instance_identity=Claim.CRYPTO_VALIDATION_FAILED,
    configuration=Claim.CRYPTO_VALIDATION_FAILED,
    executables=Claim.CRYPTO_VALIDATION_FAILED,
    hardware=Claim.CRYPTO_VALIDATION_FAILED,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppraisalPolicy:
    """The verifier's own settings (what the reference values do not say)."""

    verifier_id: VerifierId = field(
        default_factory=lambda: VerifierId(developer="edgetrust", build=f"edgetrust {__version__}")
    )
    policy_id: str = "edgetrust/device-v1"
    #: The token's ``iat`` may be at most this old.
    max_age: dt.timedelta = dt.timedelta(minutes=5)
    #: Tolerated clock difference between device and verifier.
    clock_skew: dt.timedelta = dt.timedelta(seconds=30)
    #: Lifetime of the attestation result (EAR ``exp``); ``None``: no ``exp``.
    result_lifetime: dt.timedelta | None = dt.timedelta(hours=1)
    #: Copy the token into the EAR (``ear.raw-evidence``) for auditors.
    include_raw_evidence: bool = False


@dataclass(frozen=True, slots=True)
class _Finding:
    reason: str
    category: Category
    value: int
    error: EvidenceError


@dataclass(slots=True)
class _Appraiser:
    """Collects findings; the state of one appraise() call."""

    findings: list[_Finding] = field(default_factory=list)

    def add(
        self, reason: str, category: Category, value: int, error: type[EvidenceError], text: str
    ) -> None:
        self.findings.append(_Finding(reason, category, int(value), error(text)))

    def vector(self, base: TrustVector) -> TrustVector:
        vector = base
        for finding in self.findings:
            vector = vector.with_claim(finding.category, finding.value)
        return vector


def appraise(
    *,
    chain_certs: Sequence[x509.Certificate | bytes],
    token: bytes,
    anchors: Sequence[TrustAnchor],
    reference_values: ReferenceValues,
    expected_nonce: bytes,
    now: dt.datetime,
    policy: AppraisalPolicy | None = None,
) -> AttestationResult:
    """Appraise a device's evidence; see the module documentation for the steps and reasons.

    ``chain_certs`` are the device's certificates in any order (DER bytes or parsed), leaf = the
    alias certificate of the last boot layer; ``token`` the EAT (COSE_Sign1 CWT, tagged or not).
    """
    policy = policy or AppraisalPolicy()
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise ConfigError("appraise: now must be a timezone-aware datetime")
    if not isinstance(expected_nonce, bytes) or not expected_nonce:
        raise ConfigError("appraise: expected_nonce must be non-empty bytes")
    run = _Appraiser()

    # 1. the chain
    chain = _validate(run, chain_certs, anchors, now)
    if chain is None:
        return _result(run, policy, now, expected_nonce, token, base=TrustVector())

    # 2. the token, signed by the leaf key
    claims = _verify_token(run, token, chain)
    if claims is None:
        return _result(run, policy, now, expected_nonce, token, base=_CRYPTO_FAILED)

    # 3.-9. everything the verified claims say
    _check_profile(run, claims)
    _check_freshness(run, claims, expected_nonce, now, policy)
    _check_identity(run, claims, chain)
    product, firmware = select_reference(run, claims, reference_values)
    tcbs = tcb_infos(chain)
    if firmware is not None and product is not None:
        check_layers(run, claims, tcbs, firmware)
        check_svn(run, claims, tcbs, product, firmware)
    check_state(run, claims, tcbs, firmware)
    return _result(
        run,
        policy,
        now,
        expected_nonce,
        token,
        base=_POSITIVE,
        claims=claims,
        product=product,
    )


# ---- 1. chain ---------------------------------------------------------------------------------


def _validate(
    run: _Appraiser,
    chain_certs: Sequence[x509.Certificate | bytes],
    anchors: Sequence[TrustAnchor],
    now: dt.datetime,
) -> ValidatedChain | None:
    ii = Category.INSTANCE_IDENTITY
    certificates: list[x509.Certificate] = []
    for item in chain_certs:
        if isinstance(item, x509.Certificate):
            certificates.append(item)
            continue
        try:
            certificates.append(x509.load_der_x509_certificate(bytes(item)))
        except (ValueError, TypeError) as e:
            run.add("chain_malformed", ii, Claim.UNTRUSTWORTHY_INSTANCE, ASN1Error, f"{e}")
            return None
    try:
        return validate_chain(certificates, anchors, now)
    except UntrustedAnchorError as e:
        run.findings.append(_Finding("chain_untrusted", ii, Claim.UNRECOGNIZED_INSTANCE, e))
    except ValidityError as e:
        run.findings.append(_Finding("chain_expired", ii, Claim.UNTRUSTWORTHY_INSTANCE, e))
    except EvidenceError as e:
        run.findings.append(_Finding("chain_invalid", ii, Claim.UNTRUSTWORTHY_INSTANCE, e))
    return None


# ---- 2. token ---------------------------------------------------------------------------------


def _verify_token(run: _Appraiser, token: bytes, chain: ValidatedChain) -> eat.EatClaims | None:
    ii = Category.INSTANCE_IDENTITY
    failed = Claim.CRYPTO_VALIDATION_FAILED
    try:
        message, claims = eat.decode_eat(bytes(token))
        if not isinstance(message, cose.Sign1Message):
            run.add("token_not_signed", ii, failed, AlgorithmError, "the EAT is MACed, not signed")
            return None
        leaf_key = chain.leaf_public_key
        if isinstance(leaf_key, rsa.RSAPublicKey):
            run.add("algorithm_invalid", ii, failed, AlgorithmError, "RSA alias keys: no COSE alg")
            return None
        cose.verify_sign1(message, leaf_key)
    except SignatureError as e:
        run.findings.append(_Finding("signature_invalid", ii, failed, e))
    except AlgorithmError as e:
        run.findings.append(_Finding("algorithm_invalid", ii, failed, e))
    except EvidenceError as e:
        run.findings.append(_Finding("token_malformed", ii, failed, e))
    else:
        return claims
    return None


# ---- 3. profile -------------------------------------------------------------------------------


def _check_profile(run: _Appraiser, claims: eat.EatClaims) -> None:
    ii, bad = Category.INSTANCE_IDENTITY, Claim.PROFILE_VIOLATION
    if claims.eat_profile != eat.DEVICE_PROFILE:
        run.add(
            "profile_mismatch",
            ii,
            bad,
            ClaimError,
            f"eat_profile is {claims.eat_profile!r}, expected {eat.DEVICE_PROFILE!r}",
        )
    for name, attr in eat.PROFILE_REQUIRED_CLAIMS:
        if attr == "nonce":
            continue  # reported as nonce_missing by the freshness step
        if getattr(claims, attr) is None:
            run.add(f"claim_missing:{name}", ii, bad, ClaimError, f"claim {name} missing")


# ---- 4. freshness -----------------------------------------------------------------------------


def _check_freshness(
    run: _Appraiser,
    claims: eat.EatClaims,
    expected_nonce: bytes,
    now: dt.datetime,
    policy: AppraisalPolicy,
) -> None:
    ii, stale = Category.INSTANCE_IDENTITY, Claim.STALE_EVIDENCE
    nonces = claims.nonces()
    if not nonces:
        run.add("nonce_missing", ii, stale, NonceError, "the token carries no nonce")
    else:
        matched = False
        for nonce in nonces:
            matched |= hmac.compare_digest(nonce, expected_nonce)
        if not matched:
            run.add("nonce_mismatch", ii, stale, NonceError, "the token's nonce is not ours")
    at = now.timestamp()
    skew = policy.clock_skew.total_seconds()
    if claims.iat is not None:
        if claims.iat > at + skew:
            run.add("token_from_future", ii, stale, FreshnessError, "iat is in the future")
        elif at - claims.iat > policy.max_age.total_seconds() + skew:
            run.add("token_too_old", ii, stale, FreshnessError, f"iat older than {policy.max_age}")
    if claims.exp is not None and at >= claims.exp + skew:
        run.add("token_expired", ii, stale, FreshnessError, "the token has expired (exp)")
    if claims.nbf is not None and at + skew < claims.nbf:
        run.add("token_not_yet_valid", ii, stale, FreshnessError, "the token is not valid yet")


# ---- 5. identity ------------------------------------------------------------------------------


def _check_identity(run: _Appraiser, claims: eat.EatClaims, chain: ValidatedChain) -> None:
    ii = Category.INSTANCE_IDENTITY
    chain_ueid = chain.ueid
    if chain_ueid is None:
        run.add(
            "chain_ueid_missing",
            ii,
            Claim.PROFILE_VIOLATION,
            ClaimError,
            "no certificate of the chain carries tcg-dice-Ueid",
        )
    elif claims.ueid is not None and not hmac.compare_digest(claims.ueid, chain_ueid.value):
        run.add(
            "ueid_mismatch",
            ii,
            Claim.UNTRUSTWORTHY_INSTANCE,
            AppraisalError,
            "the token's ueid is not the DeviceID certificate's",
        )


# ---- the result -------------------------------------------------------------------------------


def _result(
    run: _Appraiser,
    policy: AppraisalPolicy,
    now: dt.datetime,
    nonce: bytes,
    token: bytes,
    *,
    base: TrustVector,
    claims: eat.EatClaims | None = None,
    product: ProductReference | None = None,
) -> AttestationResult:
    vector = run.vector(base)
    worst = vector.tier
    if run.findings and worst is Tier.AFFIRMING:  # pragma: no cover - every finding has a tier
        worst = Tier.WARNING
    error = next(
        (f.error for f in run.findings if Tier.of(f.value) is Tier.CONTRAINDICATED),
        run.findings[0].error if run.findings else None,
    )
    appraisal = Appraisal(
        status=worst,
        trust_vector=vector,
        policy_id=policy.policy_id,
        reasons=tuple(f.reason for f in run.findings),
        ueid=claims.ueid if claims is not None else None,
        product=product.product if product is not None else None,
        firmware_version=(
            claims.swversion.version if claims is not None and claims.swversion else None
        ),
        device_key=claims.cnf_key if claims is not None else None,
    )
    # Whole seconds in UTC: the EAR's iat/exp are NumericDates, so a signed result round-trips.
    issued = now.astimezone(dt.UTC).replace(microsecond=0)
    return AttestationResult(
        submods={DEVICE_SUBMOD: appraisal},
        verifier_id=policy.verifier_id,
        issued_at=issued,
        expires_at=issued + policy.result_lifetime if policy.result_lifetime is not None else None,
        nonce=nonce,
        raw_evidence=bytes(token) if policy.include_raw_evidence else None,
        error=error,
    )
