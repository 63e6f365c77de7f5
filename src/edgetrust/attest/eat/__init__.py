"""Entity Attestation Tokens (RFC 9711) as CWTs (RFC 8392) in COSE_Sign1 (or COSE_Mac0).

Claim keys are those of RFC 9711 section 10 (IANA CWT Claims registry) plus the CWT claims of
RFC 8392 and ``cnf`` of RFC 8747. Decoding is typed: a registered claim with the wrong type or size
is a :class:`~edgetrust.errors.ClaimError`; unknown claims are kept in :attr:`EatClaims.extra`.

Our device profile, ``tag:edgetrust.dev,2026:device-v1`` (:data:`DEVICE_PROFILE`): a token signed
by the DICE leaf alias key (ES256 or EdDSA) carrying ``eat_profile``, ``eat_nonce`` (one nonce),
``ueid``, ``iat``, ``oemid``, ``hwmodel``, ``swname``, ``swversion``, ``dbgstat``, ``oemboot``,
``cnf`` (a COSE_Key: the device's operational TLS public key) and ``measurements``. The
measurements travel as one RFC 9711 ``measurements-format`` entry, a measurement report
``[60, bstr .cbor [+ measurement]]``: CoAP content-format 60 (``application/cbor``) whose byte
string holds an array of maps in our profile's measurement format::

    measurement = {
        1 => tstr,      ; name: "layer0-bootloader", "firmware", "application", "model:<id>"
        2 => tstr,      ; digest algorithm (Named Information): "sha-256" / "sha-384" / "sha-512"
        3 => bstr,      ; digest of the measured code/model (size fixed by the algorithm)
        ? 4 => tstr,    ; version
        ? 5 => uint,    ; security version number (SVN)
        ? 6 => uint,    ; DICE layer, for layer measurements
    }

One measurement per DICE layer and one each for the loaded application and the model; names are
unique. (One report rather than one entry per measurement keeps verification to a single nested
CBOR decode.) See :func:`check_device_profile`.

The package, one concept per module (this module re-exports the public API):

* :mod:`~edgetrust.attest.eat.vocabulary` -- claim keys and names, enumerated values, bounds;
* :mod:`~edgetrust.attest.eat.model` -- :class:`EatClaims` and its CBOR / JSON encodings;
* :mod:`~edgetrust.attest.eat.measurements` -- :class:`Measurement` and the measurement report;
* :mod:`~edgetrust.attest.eat.cnf` -- the ``cnf`` claim (confirmation key);
* :mod:`~edgetrust.attest.eat.values` -- type checks of the other registered claim values;
* :mod:`~edgetrust.attest.eat.device_profile` -- the device profile's straight-line decoder (the
  hot path of :func:`verify_eat`) and :func:`check_device_profile`;
* :mod:`~edgetrust.attest.eat.decoding` -- :func:`decode_claims`, the general claims decoder;
* :mod:`~edgetrust.attest.eat.tokens` -- :func:`make_eat`, :func:`decode_eat`, :func:`verify_eat`;
* :mod:`~edgetrust.attest.eat.drafts` -- how validated values are built cheaply (the class swap).
"""

from __future__ import annotations

from edgetrust.attest.eat.decoding import decode_claims
from edgetrust.attest.eat.device_profile import PROFILE_REQUIRED_CLAIMS, check_device_profile
from edgetrust.attest.eat.measurements import Measurement
from edgetrust.attest.eat.model import (
    EatClaims,
    Submodule,
    TypedContent,
    Version,
    encode_claims,
    encode_claims_map,
    jsonable,
)
from edgetrust.attest.eat.tokens import decode_eat, make_eat, verify_eat
from edgetrust.attest.eat.vocabulary import (
    CLAIM_NAMES,
    CWT_TAG,
    DEVICE_PROFILE,
    DIGEST_SIZES,
    HWMODEL_MAX,
    HWMODEL_MIN,
    MAX_SUBMOD_DEPTH,
    MEASUREMENT_CONTENT_FORMAT,
    NONCE_MAX,
    NONCE_MIN,
    UEID_MAX,
    UEID_MIN,
    Claim,
    DebugStatus,
    IntendedUse,
)

__all__ = [
    "CLAIM_NAMES",
    "CWT_TAG",
    "DEVICE_PROFILE",
    "DIGEST_SIZES",
    "HWMODEL_MAX",
    "HWMODEL_MIN",
    "MAX_SUBMOD_DEPTH",
    "MEASUREMENT_CONTENT_FORMAT",
    "NONCE_MAX",
    "NONCE_MIN",
    "PROFILE_REQUIRED_CLAIMS",
    "UEID_MAX",
    "UEID_MIN",
    "Claim",
    "DebugStatus",
    "EatClaims",
    "IntendedUse",
    "Measurement",
    "Submodule",
    "TypedContent",
    "Version",
    "check_device_profile",
    "decode_claims",
    "decode_eat",
    "encode_claims",
    "encode_claims_map",
    "jsonable",
    "make_eat",
    "verify_eat",
]
