"""COSE_Sign1 and COSE_Mac0 (RFC 9052, algorithms from RFC 9053) on strict CBOR + cryptography.

Decisions, each fail-closed:

* The protected header is kept as the exact bytes received and those bytes go into
  ``Sig_structure`` / ``MAC_structure`` (RFC 9052 sections 4.4 and 6.3); nothing is re-encoded.
  One case is fixed by the RFC itself: "if there are no protected attributes, a zero-length byte
  string is used", so a protected header that decodes to an *empty* map (e.g. ``h'A0'``) enters the
  structure as ``h''`` (cose-wg example sign-pass-01 is signed that way).
* The algorithm comes from the protected header. For signatures RFC 9052 also allows it in the
  unprotected header (cose-wg example sign-pass-01): that is accepted because the *key* decides
  which algorithm can be used with it (a P-256 key only ever verifies ES256, an Ed25519 key only
  EdDSA), so rewriting an unprotected ``alg`` cannot select a weaker algorithm. For MACs one key
  serves several algorithms (HMAC 256/64 vs 256/256), so a MAC's ``alg`` must be protected.
* The algorithm must match the key: type and curve (no algorithm confusion). Unknown or missing
  ``alg`` is an :class:`~edgetrust.errors.AlgorithmError`.
* A label may not appear in both buckets; ``crit`` must be protected and list only parameters we
  process (RFC 9052 section 3.1).
* ECDSA signatures are the fixed-width ``r || s`` of RFC 9053 section 2.1, converted to and from DER
  for cryptography. Signing is deterministic (RFC 6979) so generated vectors are reproducible.

The package, one concept per module (this module re-exports the public API):

* :mod:`~edgetrust.attest.cose.algorithms` -- algorithms, key types, algorithm/key binding, HMAC;
* :mod:`~edgetrust.attest.cose.messages` -- :class:`Sign1Message`, :class:`Mac0Message`, headers;
* :mod:`~edgetrust.attest.cose.decoding` -- strict decoding (:func:`decode_message`, ...);
* :mod:`~edgetrust.attest.cose.envelope` -- the fast path of decoding (common tagged COSE_Sign1);
* :mod:`~edgetrust.attest.cose.verification` -- :func:`verify_sign1`, :func:`verify_mac0` and the
  to-be-signed structures;
* :mod:`~edgetrust.attest.cose.signing` -- :func:`sign1`, :func:`mac0`.
"""

from __future__ import annotations

from edgetrust.attest.cose.algorithms import (
    MIN_HMAC_KEY_BYTES,
    Algorithm,
    PrivateKey,
    PublicKey,
    SigningKey,
    SymmetricKey,
    VerificationKey,
    default_algorithm,
)
from edgetrust.attest.cose.decoding import decode_mac0, decode_message, decode_sign1
from edgetrust.attest.cose.messages import (
    COSE_MAC0_TAG,
    COSE_SIGN1_TAG,
    Header,
    HeaderLabel,
    Mac0Message,
    Sign1Message,
)
from edgetrust.attest.cose.signing import mac0, sign1
from edgetrust.attest.cose.verification import (
    mac_structure,
    sig_structure,
    verify_mac0,
    verify_sign1,
)

__all__ = [
    "COSE_MAC0_TAG",
    "COSE_SIGN1_TAG",
    "MIN_HMAC_KEY_BYTES",
    "Algorithm",
    "Header",
    "HeaderLabel",
    "Mac0Message",
    "PrivateKey",
    "PublicKey",
    "Sign1Message",
    "SigningKey",
    "SymmetricKey",
    "VerificationKey",
    "decode_mac0",
    "decode_message",
    "decode_sign1",
    "default_algorithm",
    "mac0",
    "mac_structure",
    "sig_structure",
    "sign1",
    "verify_mac0",
    "verify_sign1",
]
