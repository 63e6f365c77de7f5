"""The vocabulary of EAT claims-sets: registered claim keys and names, enumerated claim values,
the size bounds of RFC 9711, and the identifiers of our device profile.

Claim keys are those of RFC 9711 section 10 (IANA CWT Claims registry) plus the CWT claims of
RFC 8392 and ``cnf`` of RFC 8747.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

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
    "UEID_MAX",
    "UEID_MIN",
    "Claim",
    "DebugStatus",
    "IntendedUse",
]

DEVICE_PROFILE: Final = "tag:edgetrust.dev,2026:device-v1"
#: The CWT CBOR tag (RFC 8392 section 6); accepted around the COSE tag, never required.
CWT_TAG: Final = 61
#: CoAP content-format of our measurement entries: 60 = application/cbor (RFC 7049 / 8949).
MEASUREMENT_CONTENT_FORMAT: Final = 60
#: Bound on nested ``submods`` (claims-sets inside claims-sets).
MAX_SUBMOD_DEPTH: Final = 4

NONCE_MIN, NONCE_MAX = 8, 64  # RFC 9711 section 4.1: nonce-type = bstr .size (8..64)
UEID_MIN, UEID_MAX = 7, 33  # RFC 9711 section 4.2.1: ueid-type = bstr .size (7..33)
HWMODEL_MIN, HWMODEL_MAX = 1, 32  # RFC 9711 section 4.2.4

#: Digest algorithms of our measurements (Named Information names) -> digest size in bytes.
DIGEST_SIZES: Final = {"sha-256": 32, "sha-384": 48, "sha-512": 64}


class Claim(IntEnum):
    """CWT claim keys: RFC 8392 (1-7), RFC 8747 (8) and RFC 9711 (10, 256-275)."""

    ISS = 1
    SUB = 2
    AUD = 3
    EXP = 4
    NBF = 5
    IAT = 6
    CTI = 7
    CNF = 8
    EAT_NONCE = 10
    UEID = 256
    SUEIDS = 257
    OEMID = 258
    HWMODEL = 259
    HWVERSION = 260
    UPTIME = 261
    OEMBOOT = 262
    DBGSTAT = 263
    LOCATION = 264
    EAT_PROFILE = 265
    SUBMODS = 266
    BOOTCOUNT = 267
    BOOTSEED = 268
    DLOAS = 269
    SWNAME = 270
    SWVERSION = 271
    MANIFESTS = 272
    MEASUREMENTS = 273
    MEASRES = 274
    INTUSE = 275


#: Claim key -> registered claim name (the JWT/JSON name).
CLAIM_NAMES: Final[dict[int, str]] = {c.value: c.name.lower() for c in Claim}


class DebugStatus(IntEnum):
    """``dbgstat`` values (RFC 9711 section 4.2.9)."""

    ENABLED = 0
    DISABLED = 1
    DISABLED_SINCE_BOOT = 2
    DISABLED_PERMANENTLY = 3
    DISABLED_FULLY_AND_PERMANENTLY = 4


class IntendedUse(IntEnum):
    """``intuse`` values (RFC 9711 section 4.3.3)."""

    GENERIC = 1
    REGISTRATION = 2
    PROVISIONING = 3
    CSR = 4
    POP = 5
