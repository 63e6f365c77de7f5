"""edgetrust: DICE identity, attestation-gated onboarding and mTLS inference offload.

Subpackages: :mod:`edgetrust.certs` (X.509 and DICE extensions), :mod:`edgetrust.attest`
(DICE derivation, CBOR/COSE, EAT/PSA, appraisal, EAR), :mod:`edgetrust.onboarding` (factory,
registry, verifier), :mod:`edgetrust.offload` (inference agent and client), :mod:`edgetrust.cli`.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
