"""A sample attestation result shared by the EAR tests (JWT and CWT forms)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from edgetrust.attest.ear import (
    DEVICE_SUBMOD,
    Appraisal,
    AttestationResult,
    Tier,
    TrustVector,
    VerifierId,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
AFFIRMING_VECTOR = TrustVector(instance_identity=2, configuration=2, executables=2, hardware=2)


def sample_result(*, device_key: PublicKeyTypes | None = None, **changes: Any) -> AttestationResult:
    """An affirming result for one device; ``changes`` replace top-level fields.

    Without ``device_key`` a fresh P-256 key is bound (so two calls give different results).
    """
    if device_key is None:
        device_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    appraisal = Appraisal(
        status=Tier.AFFIRMING,
        trust_vector=AFFIRMING_VECTOR,
        policy_id="edgetrust/default",
        reasons=(),
        ueid=b"\x01" + bytes(16),
        product="edgetrust-sim",
        firmware_version="1.0.0",
        device_key=device_key,
    )
    fields: dict[str, Any] = {
        "submods": {DEVICE_SUBMOD: appraisal},
        "verifier_id": VerifierId(developer="edgetrust", build="0.1.0"),
        "issued_at": NOW,
        "nonce": b"\x07" * 32,
    }
    fields.update(changes)
    return AttestationResult(**fields)
