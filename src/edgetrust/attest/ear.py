"""EAT Attestation Results (EAR) with the AR4SI trustworthiness vector, signed as a JWT or CWT.

What the verifier says about a device (draft-ietf-rats-ear; trust vector and tiers from
draft-ietf-rats-ar4si). We emit the JSON serialisation that Veraison's EAR libraries produce and
consume: profile ``tag:github.com,2023:veraison/ear`` and dotted claim names (``ear.status``,
``ear.trustworthiness-vector``, ``ear.verifier-id``, ``ear.appraisal-policy-id``,
``ear.raw-evidence``), plus ``iat``, optional ``exp``, ``eat_nonce`` (base64url) and ``submods``.
(The latest WG drafts renamed the labels with underscores and minted a new profile URI; the
semantics are the same.)

Claims set (JSON)::

    {"eat_profile": "tag:github.com,2023:veraison/ear",
     "iat": 1700000000, "exp": 1700003600,                  # exp optional
     "ear.verifier-id": {"developer": "...", "build": "..."},
     "eat_nonce": "<base64url>",                            # optional
     "ear.raw-evidence": "<base64url>",                     # optional
     "submods": {"device": {
        "ear.status": "affirming",
        "ear.trustworthiness-vector": {"instance-identity": 2, "configuration": 2,
                                       "executables": 2, "hardware": 2},
        "ear.appraisal-policy-id": "...",                   # optional
        "edgetrust.appraisal": {                            # our extension (a map, as EAR requires)
            "reasons": ["measurement_mismatch:firmware", ...],
            "ueid": "<base64url>", "product": "...", "firmware-version": "...",
            "device-key": "<base64url DER SubjectPublicKeyInfo>"}}}}

Unknown claims are kept (``extensions``) and otherwise ignored, as EAR requires of receivers.

Signing: compact JWS (RFC 7515) with ES256 (P-256) or ES384 (P-384), see
:mod:`edgetrust.attest.jws`: the signature is raw ``r || s``; the ``alg`` header must name exactly
the algorithm of the verification key (no ``none``, no HMAC, no confusion); a ``crit`` header is
refused.

The CWT form (:func:`sign_ear_cwt`, :func:`verify_ear_cwt`: the draft's CBOR claims set with
integer keys, COSE_Sign1 with ES256, ES384 or EdDSA) is in :mod:`edgetrust.attest.ear_cwt`,
re-exported here; the data model is in :mod:`edgetrust.attest.ear_model`. Import the public
names from this module.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest.ear_cwt import (
    EAR_CWT_MEDIA_TYPE,
    from_cwt_claims,
    sign_ear_cwt,
    to_cwt_claims,
    verify_ear_cwt,
)
from edgetrust.attest.ear_model import (
    DEFAULT_CLOCK_SKEW,
    DEVICE_SUBMOD,
    EAR_PROFILE,
    EXTENSION,
    Appraisal,
    AttestationResult,
    Category,
    Claim,
    Tier,
    TrustVector,
    VerifierId,
)
from edgetrust.attest.jws import (
    MAX_JWS_SIZE,
    b64url_decode,
    b64url_encode,
    sign_jws,
    strict_json,
    verify_jws,
)
from edgetrust.errors import AlgorithmError

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEVICE_SUBMOD",
    "EAR_CWT_MEDIA_TYPE",
    "EAR_MEDIA_TYPE",
    "EAR_PROFILE",
    "EXTENSION",
    "MAX_EAR_SIZE",
    "Appraisal",
    "AttestationResult",
    "Category",
    "Claim",
    "Tier",
    "TrustVector",
    "VerifierId",
    "b64url_decode",
    "b64url_encode",
    "from_cwt_claims",
    "sign_ear",
    "sign_ear_cwt",
    "to_cwt_claims",
    "verify_ear",
    "verify_ear_cwt",
    "verify_jws",
]

EAR_MEDIA_TYPE = f'application/eat+jwt; eat_profile="{EAR_PROFILE}"'
#: Signed EARs larger than this are refused before any parsing.
MAX_EAR_SIZE = MAX_JWS_SIZE


# ---- signed form: a JWT (see edgetrust.attest.jws) ---------------------------------------------


def sign_ear(
    result: AttestationResult, key: ec.EllipticCurvePrivateKey, *, kid: str | None = None
) -> str:
    """Serialise and sign ``result`` as a compact JWS (JWT): ES256 for P-256, ES384 for P-384."""
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AlgorithmError("EAR signing needs an EC P-256 or P-384 private key")
    return sign_jws(result.to_claims(), key, kid=kid)


def verify_ear(
    token: str | bytes,
    public_key: ec.EllipticCurvePublicKey | x509.Certificate,
    *,
    now: dt.datetime | None = None,
    clock_skew: dt.timedelta = DEFAULT_CLOCK_SKEW,
) -> AttestationResult:
    """Verify a JWT EAR with the verifier's public key (or certificate) and return its result.

    With ``now``, an ``exp`` at or before ``now`` is refused
    (:class:`~edgetrust.errors.ExpiredError`), and so is an ``iat`` more than ``clock_skew``
    (default :data:`~edgetrust.attest.ear_model.DEFAULT_CLOCK_SKEW`, 60 s) after ``now``
    (:class:`~edgetrust.errors.ClaimError`). Without ``now`` neither time is checked.
    Raises :class:`~edgetrust.errors.SignatureError`, :class:`~edgetrust.errors.AlgorithmError`,
    :class:`~edgetrust.errors.MalformedError` or :class:`~edgetrust.errors.ClaimError`.
    """
    key = public_key.public_key() if isinstance(public_key, x509.Certificate) else public_key
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AlgorithmError("EAR verification needs an EC P-256 or P-384 public key")
    _, payload = verify_jws(token, key)
    result = AttestationResult.from_claims(strict_json(payload, "EAR claims set"))
    if now is not None:
        result.check_times(now, clock_skew=clock_skew)
    return result
