"""The verifier's decisions, independent of gRPC: Challenge, and Attest -> EAR (+ certificate).

:class:`AttestationService` is the core behind ``edgetrust.v1.Verifier`` (the transport lives in
:mod:`edgetrust.onboarding.verifier`). One Attest, in order:

1. decode the EAT's COSE structure and raw claims map without trusting them, for two routing facts
   only: the nonce it claims to answer and its ``hwmodel``. Evidence that does not decode is a
   :class:`MalformedError` raised *before* anything is stored (gRPC INVALID_ARGUMENT);
2. pick the endorsements of that product (its trust anchors and reference values; a chain to
   another manufacturer's root cannot onboard as this product) from a cache refreshed from the
   registry every few seconds -- anchors are parsed once, not per call;
3. :func:`~edgetrust.attest.appraisal.appraise` (pure) with ``expected_nonce`` = the claimed nonce:
   the signature check makes it the device's own statement;
4. not affirming: the nonce is burnt (single use) and the refusal carries the appraisal's reasons;
5. affirming: :meth:`Certifier.issue` checks CSR key == ``cnf`` key, builds the certificate and
   commits -- in ONE transaction -- the nonce consumption (unknown / expired / replayed / other
   session are refused here, atomically across replicas), the device, the certificate and the
   audit entry. A revoked device is refused inside that same transaction.

Every refusal after step 3 gets a signed EAR whose device appraisal is downgraded to
``contraindicated`` with the extra reason (``nonce_replayed``, ``csr_key_mismatch``,
``device_revoked``, ...). Refusals are logged and counted but not stored (beyond the burnt nonce).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest import cbor, cose, eat, schemes
from edgetrust.attest.appraisal import AppraisalPolicy, appraise
from edgetrust.attest.ear import (
    DEVICE_SUBMOD,
    AttestationResult,
    Category,
    Claim,
    Tier,
    sign_ear,
    sign_ear_cwt,
)
from edgetrust.attest.reference import Anchor, ReferenceValues, parse_anchors
from edgetrust.certs.chain import dice_extensions
from edgetrust.errors import (
    AlgorithmError,
    DeviceConflictError,
    Error,
    EvidenceError,
    KeyBindingError,
    MalformedError,
    NonceError,
    NonceExpiredError,
    NonceReplayError,
    NonceSessionError,
    PermissionDeniedError,
    RevokedError,
    SignatureError,
    UnsupportedSchemeError,
)
from edgetrust.onboarding.certifier import Certifier
from edgetrust.onboarding.nonces import Challenge, NonceSessions, NonceStore
from edgetrust.onboarding.records import EndorsementRecord, NonceClaim

__all__ = [
    "EAR_FORMATS",
    "AttestationOutcome",
    "AttestationRequest",
    "AttestationService",
    "AttestationSettings",
    "EarFormat",
    "EndorsementCache",
    "EndorsementSet",
]

#: The only evidence scheme that can onboard a device: our DICE device EAT profile.
ONBOARDING_MEDIA_TYPE = schemes.DEVICE_EAT_MEDIA_TYPE

#: How the verifier signs EARs: a JWT (compact JWS) or a CWT (tagged COSE_Sign1).
EarFormat = Literal["jwt", "cwt"]
EAR_FORMATS: Final[tuple[EarFormat, ...]] = ("jwt", "cwt")


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationRequest:
    """An Attest call after syntactic decoding: certificates and CSR parsed, sizes bounded."""

    session_id: str
    chain: tuple[x509.Certificate, ...]
    evidence: bytes
    media_type: str
    csr: x509.CertificateSigningRequest
    peer: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationOutcome:
    """What the core decided. ``certificate`` is set if and only if the result is affirming."""

    ear: bytes
    tier: str
    reasons: tuple[str, ...] = ()
    ueid: bytes | None = None
    certificate: x509.Certificate | None = None
    certificate_chain: tuple[x509.Certificate, ...] = ()

    @property
    def affirmed(self) -> bool:
        return self.certificate is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationSettings:
    """Verifier policy beyond the reference values."""

    nonce_ttl: timedelta = timedelta(seconds=60)
    endorsement_refresh: timedelta = timedelta(seconds=5)
    appraisal: AppraisalPolicy = field(default_factory=AppraisalPolicy)
    actor: str = "verifier"
    ear_kid: str | None = None
    #: the EAR's serialization (``[verifier] ear_format``)
    ear_format: EarFormat = "jwt"


class VerifierStore(NonceStore, Protocol):
    """What the service reads and writes besides issuance (the SQL store implements it)."""

    def list_endorsements(self, *, product: str | None = None) -> list[EndorsementRecord]: ...


# ------------------------------------------------------------------------------------------------
# Endorsements
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EndorsementSet:
    """Every endorsed product with its own trust anchors, parsed once."""

    reference_values: ReferenceValues = field(default_factory=ReferenceValues)
    anchors: tuple[Anchor, ...] = ()
    by_hwmodel: dict[bytes, tuple[ReferenceValues, tuple[Anchor, ...]]] = field(
        default_factory=dict
    )

    def scope(self, hwmodel: bytes | None) -> tuple[ReferenceValues, tuple[Anchor, ...]]:
        """The reference values and anchors to appraise a device claiming ``hwmodel`` with.

        An unknown product is appraised against everything (so the result says
        ``unknown_product`` rather than a confusing chain error).
        """
        if hwmodel is not None and hwmodel in self.by_hwmodel:
            return self.by_hwmodel[hwmodel]
        return self.reference_values, self.anchors

    @classmethod
    def from_records(cls, records: Sequence[EndorsementRecord]) -> EndorsementSet:
        everything = ReferenceValues()
        all_anchors: dict[bytes, Anchor] = {}
        by_hwmodel: dict[bytes, tuple[ReferenceValues, tuple[Anchor, ...]]] = {}
        for record in sorted(records, key=lambda r: (r.product, r.firmware_version)):
            values = ReferenceValues.from_json(record.document)
            anchors = parse_anchors(record.trust_anchors_pem) if record.trust_anchors_pem else ()
            for anchor in anchors:
                all_anchors.setdefault(_anchor_key(anchor), anchor)
            everything = everything.merged(values)
            for product in values.products:
                by_hwmodel[product.hwmodel] = (ReferenceValues(products=(product,)), anchors)
        return cls(
            reference_values=everything,
            anchors=tuple(all_anchors.values()),
            by_hwmodel=by_hwmodel,
        )


def _anchor_key(anchor: Anchor) -> bytes:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    if isinstance(anchor, x509.Certificate):
        return anchor.public_bytes(serialization.Encoding.DER)
    return anchor.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class EndorsementCache:
    """The registry's endorsements, parsed, refreshed at most every ``refresh``."""

    def __init__(
        self,
        store: VerifierStore,
        *,
        refresh: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._current: EndorsementSet | None = None
        self._loaded_at: datetime | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = None

    def current(self) -> EndorsementSet:
        now = self._clock()
        with self._lock:
            fresh = self._loaded_at is not None and now - self._loaded_at < self._refresh
            if fresh and self._current is not None:
                return self._current
            # A store failure propagates (StoreError -> UNAVAILABLE): never appraise against
            # endorsements we could not read, even stale ones beyond the refresh period.
            self._current = EndorsementSet.from_records(self._store.list_endorsements())
            self._loaded_at = now
            return self._current


# ------------------------------------------------------------------------------------------------
# The service
# ------------------------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


#: Refusal reasons added after appraisal, and the trust-vector claim each one sets.
_NONCE_REASONS: dict[type[NonceError], str] = {
    NonceReplayError: "nonce_replayed",
    NonceExpiredError: "nonce_expired",
    NonceSessionError: "nonce_session_mismatch",
}


class AttestationService:
    """Challenge and Attest (see the module documentation)."""

    def __init__(
        self,
        *,
        store: VerifierStore,
        certifier: Certifier,
        ear_key: ec.EllipticCurvePrivateKey,
        settings: AttestationSettings | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings or AttestationSettings()
        self._store = store
        self._certifier = certifier
        self._ear_key = ear_key
        self._clock = clock
        self._nonces = NonceSessions(store, ttl=self.settings.nonce_ttl)
        self.endorsements = EndorsementCache(
            store, refresh=self.settings.endorsement_refresh, clock=clock
        )

    # -- Challenge ----------------------------------------------------------------------------

    def challenge(self, *, device_hint: str) -> Challenge:
        return self._nonces.challenge(now=self._clock(), device_hint=device_hint or None)

    # -- Attest -------------------------------------------------------------------------------

    def attest(self, request: AttestationRequest) -> AttestationOutcome:
        _check_media_type(request.media_type)
        routing = _routing(request.evidence)
        now = self._clock()
        claimed = routing.nonce
        references, anchors = self.endorsements.current().scope(routing.hwmodel)
        result = appraise(
            chain_certs=request.chain,
            token=request.evidence,
            anchors=anchors,
            reference_values=references,
            # No (single) nonce in the token: expect one it cannot hold; appraisal says why.
            expected_nonce=claimed if claimed is not None else secrets.token_bytes(32),
            now=now,
            policy=self.settings.appraisal,
        )
        claim = None if claimed is None else NonceClaim(value=claimed, session=request.session_id)
        if not result.affirming:
            burnt = self._burn(claim, now)
            return self._refusal(result, *burnt)
        device_id = _device_id_certificate(request.chain, result.ueid)
        if device_id is None:
            burnt = self._burn(claim, now)
            return self._refusal(
                result,
                ("chain_ueid_ambiguous", Category.INSTANCE_IDENTITY, Claim.UNTRUSTWORTHY_INSTANCE),
                *burnt,
            )
        try:
            issued = self._certifier.issue(
                result=result,
                csr=request.csr,
                device_id_certificate=device_id,
                now=now,
                nonce=claim,
                detail={"session": request.session_id, "peer": request.peer[:128]},
            )
        except NonceError as e:
            # Consumed (or refused) atomically with the issuance: nothing else to undo.
            return self._refusal(result, _nonce_finding(e))
        except EvidenceError as e:
            burnt = self._burn(claim, now)
            return self._refusal(result, _issuance_finding(e), *burnt)
        return AttestationOutcome(
            ear=self._sign(result),
            tier=result.status.label,
            reasons=result.reasons,
            ueid=result.ueid,
            certificate=issued.certificate,
            certificate_chain=issued.chain,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _sign(self, result: AttestationResult) -> bytes:
        """The signed EAR in the configured serialization."""
        kid = self.settings.ear_kid
        if self.settings.ear_format == "cwt":
            return sign_ear_cwt(result, self._ear_key, kid=kid)
        return sign_ear(result, self._ear_key, kid=kid).encode("ascii")

    def _burn(
        self, claim: NonceClaim | None, now: datetime
    ) -> tuple[tuple[str, Category, int], ...]:
        """Use up the claimed nonce after a refusal; a nonce problem becomes an extra reason."""
        if claim is None:
            return ()
        try:
            self._store.consume_nonce(claim.value, session=claim.session, now=now)
        except NonceError as e:
            return (_nonce_finding(e),)
        return ()

    def _refusal(
        self, result: AttestationResult, *findings: tuple[str, Category, int]
    ) -> AttestationOutcome:
        refused = _downgrade(result, findings)
        return AttestationOutcome(
            ear=self._sign(refused),
            tier=refused.status.label,
            reasons=refused.reasons,
            ueid=refused.ueid,
        )


def _check_media_type(media_type: str) -> None:
    try:
        scheme = schemes.scheme_for(media_type)
    except UnsupportedSchemeError:
        raise
    except Error as e:
        raise UnsupportedSchemeError(f"media type {media_type!r}: {e.message}") from e
    if scheme.media_type != ONBOARDING_MEDIA_TYPE:
        raise UnsupportedSchemeError(
            f"onboarding takes {ONBOARDING_MEDIA_TYPE}, not {media_type!r} ({scheme.name})"
        )


@dataclass(frozen=True, slots=True)
class _Routing:
    """What the verifier reads from an EAT before trusting it: only where to route it."""

    nonce: bytes | None
    hwmodel: bytes | None


def _routing(evidence: bytes) -> _Routing:
    """Decode (never trust) the EAT's COSE structure and claims map for the claimed nonce and
    hwmodel. Structurally undecodable evidence is malformed: refused before anything is stored.
    Claims of the wrong type are left to the appraisal (a signed, negative result).

    Only the raw claims map is read here -- the typed claim decoding runs once, in appraise().
    """
    try:
        message = cose.decode_message(evidence, outer_tags=(eat.CWT_TAG,), untagged_as="sign1")
        if message.payload is None:
            raise MalformedError("the EAT has a detached payload")
        claims = cbor.loads(message.payload, expect=dict)
    except EvidenceError as e:
        raise MalformedError(f"evidence is not a decodable EAT: {e.message}") from e
    nonce = claims.get(int(eat.Claim.EAT_NONCE))
    hwmodel = claims.get(int(eat.Claim.HWMODEL))
    return _Routing(
        nonce=nonce if isinstance(nonce, bytes) and nonce else None,
        hwmodel=hwmodel if isinstance(hwmodel, bytes) else None,
    )


def _device_id_certificate(
    chain: Sequence[x509.Certificate], ueid: bytes | None
) -> x509.Certificate | None:
    """The one submitted certificate carrying the result's UEID (the DeviceID certificate)."""
    if ueid is None:
        return None
    found: list[x509.Certificate] = []
    for certificate in chain:
        try:
            extension = dice_extensions(certificate).ueid
        except EvidenceError:
            return None
        if extension is not None and extension.value == ueid and certificate not in found:
            found.append(certificate)
    return found[0] if len(found) == 1 else None


def _nonce_finding(error: NonceError) -> tuple[str, Category, int]:
    reason = _NONCE_REASONS.get(type(error), "nonce_unknown")
    return reason, Category.INSTANCE_IDENTITY, Claim.STALE_EVIDENCE


def _issuance_finding(error: EvidenceError) -> tuple[str, Category, int]:
    ii = Category.INSTANCE_IDENTITY
    if isinstance(error, KeyBindingError):
        return "csr_key_mismatch", ii, Claim.UNTRUSTWORTHY_INSTANCE
    if isinstance(error, SignatureError):
        return "csr_signature_invalid", ii, Claim.CRYPTO_VALIDATION_FAILED
    if isinstance(error, AlgorithmError):
        return "csr_key_unsupported", ii, Claim.UNTRUSTWORTHY_INSTANCE
    if isinstance(error, RevokedError):
        return "device_revoked", ii, Claim.UNTRUSTWORTHY_INSTANCE
    if isinstance(error, DeviceConflictError):
        return "device_conflict", ii, Claim.UNRECOGNIZED_INSTANCE
    if isinstance(error, PermissionDeniedError):
        return "not_certifiable", ii, Claim.UNTRUSTWORTHY_INSTANCE
    return "issuance_refused", ii, Claim.UNTRUSTWORTHY_INSTANCE


def _downgrade(
    result: AttestationResult, findings: Sequence[tuple[str, Category, int]]
) -> AttestationResult:
    """The result with each finding added to the device appraisal (worst tier kept)."""
    if not findings:
        return result
    device = result.device
    vector = device.trust_vector
    for _, category, value in findings:
        vector = vector.with_claim(category, value)
    status = max(device.status, vector.tier, Tier.CONTRAINDICATED)
    appraisal = replace(
        device,
        status=status,
        trust_vector=vector,
        reasons=device.reasons + tuple(reason for reason, _, _ in findings),
    )
    label = DEVICE_SUBMOD if DEVICE_SUBMOD in result.submods else next(iter(result.submods))
    return replace(result, submods={**result.submods, label: appraisal})
