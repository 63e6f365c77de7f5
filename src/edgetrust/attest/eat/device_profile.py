"""Our device profile, :data:`~edgetrust.attest.eat.DEVICE_PROFILE`: its claims decoded in a
straight line (the hot path of :func:`~edgetrust.attest.eat.verify_eat`) and checked for presence
(:func:`check_device_profile`).

The straight line (:func:`_device_profile_claims`) takes only the claims-set our devices make
(onboarding.device, the CLI): exactly the claims of :data:`_PROFILE_KEYS`, in the order of the
deterministic encoding, each value of the exact type the device writes. Everything else returns
None and goes to the general loop of :mod:`edgetrust.attest.eat.decoding`, which accepts it or
raises the precise :class:`~edgetrust.errors.ClaimError`; a property test compares both on
mutated claims-sets.
"""

from __future__ import annotations

from typing import Any, Final

from edgetrust.attest.eat.cnf import _pending_ec2_key, decode_cnf
from edgetrust.attest.eat.drafts import set_class
from edgetrust.attest.eat.measurements import decode_measurement_report
from edgetrust.attest.eat.model import (
    _EAT_FIELDS,
    EatClaims,
    Version,
    _EatClaimsDraft,
    _VersionDraft,
)
from edgetrust.attest.eat.values import _debug_status
from edgetrust.attest.eat.vocabulary import (
    DEVICE_PROFILE,
    HWMODEL_MAX,
    HWMODEL_MIN,
    NONCE_MAX,
    NONCE_MIN,
    UEID_MAX,
    UEID_MIN,
    Claim,
)
from edgetrust.errors import ClaimError

__all__ = ["PROFILE_REQUIRED_CLAIMS", "check_device_profile"]


# The claims of a device-profile token as our devices make them (onboarding.device, the CLI):
# exactly these claims, in the order of the deterministic encoding.
_PROFILE_KEYS: Final = tuple(
    int(c)
    for c in (
        Claim.IAT,
        Claim.CNF,
        Claim.EAT_NONCE,
        Claim.UEID,
        Claim.OEMID,
        Claim.HWMODEL,
        Claim.OEMBOOT,
        Claim.DBGSTAT,
        Claim.EAT_PROFILE,
        Claim.SWNAME,
        Claim.SWVERSION,
        Claim.MEASUREMENTS,
    )
)
# _device_profile_claims builds the draft positionally, in this field order
_FIELD_ORDER: Final = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "cti", "cnf_key", "cnf_kid", "nonce", "ueid",
    "sueids", "oemid", "hwmodel", "hwversion", "uptime", "oemboot", "dbgstat", "location",
    "eat_profile", "submods", "bootcount", "bootseed", "dloas", "swname", "swversion",
    "manifests", "measurements", "measres", "intuse", "extra",
]  # fmt: skip
if _EAT_FIELDS != _FIELD_ORDER:  # pragma: no cover - a changed EatClaims must update both
    raise TypeError("EatClaims fields changed: update _device_profile_claims and _FIELD_ORDER")


def _device_profile_claims(claims: dict[Any, Any]) -> EatClaims | None:
    """The claims of a device-profile token in its usual form, checked in a straight line.

    The same rules as the general loop of decoding._decode_claims, for one shape: exactly the
    claims of _PROFILE_KEYS, in that order, with integer keys, and every value of the exact type
    the device makes (an integer iat, a single nonce, a one-element swversion, ...). Anything else,
    including every value the rules refuse, returns None and takes the general loop, which
    accepts it or raises the precise ClaimError. (Tests compare both on mutated claims-sets.)
    """
    # The keys equal those integers; their sum is an int only if no key is merely equal to one
    # (6.0, which the general loop refuses, makes it a float). IntEnum labels pass, as there.
    try:
        if tuple(claims) != _PROFILE_KEYS or type(sum(claims)) is not int:
            return None
    except TypeError:  # keys that compare equal to integers but do not add up
        return None
    iat, cnf, nonce, ueid, oemid, hwmodel, oemboot, dbgstat, profile, swname, swversion, meas = (
        claims.values()
    )
    if not (
        type(profile) is str
        and profile == DEVICE_PROFILE
        and type(iat) is int
        and type(nonce) is bytes
        and NONCE_MIN <= len(nonce) <= NONCE_MAX
        and type(ueid) is bytes
        and UEID_MIN <= len(ueid) <= UEID_MAX
        and ((type(oemid) is bytes and len(oemid) in (3, 16)) or type(oemid) is int)
        and type(hwmodel) is bytes
        and HWMODEL_MIN <= len(hwmodel) <= HWMODEL_MAX
        and type(oemboot) is bool
        and type(dbgstat) is int
        and type(swname) is str
        and type(swversion) is list
        and len(swversion) == 1
        and type(swversion[0]) is str
    ):
        return None
    status = _debug_status(dbgstat)
    if status is None:
        return None
    version = _VersionDraft(swversion[0], None)
    set_class(version, "__class__", Version)
    pending = _pending_ec2_key(cnf[1]) if type(cnf) is dict and len(cnf) == 1 and 1 in cnf else None
    cnf_key, cnf_kid = (pending, None) if pending is not None else decode_cnf(cnf)
    measurements = decode_measurement_report(meas)
    # positional, in _FIELD_ORDER (keywords cost twice as much)
    out = _EatClaimsDraft(
        None, None, None, None, None, iat, None, cnf_key, cnf_kid, nonce, ueid, None, oemid,
        hwmodel, None, None, oemboot, status, None, profile, None, None, None, None, swname,
        version, None, measurements, None, None, {},
    )  # fmt: skip
    set_class(out, "__class__", EatClaims)
    return out  # type: ignore[no-any-return]


# ---- presence and shape ---------------------------------------------------------------------

#: The claims the device profile requires: (registered claim name, EatClaims attribute).
PROFILE_REQUIRED_CLAIMS: Final = (
    ("eat_nonce", "nonce"),
    ("ueid", "ueid"),
    ("iat", "iat"),
    ("oemid", "oemid"),
    ("hwmodel", "hwmodel"),
    ("swname", "swname"),
    ("swversion", "swversion"),
    ("dbgstat", "dbgstat"),
    ("oemboot", "oemboot"),
    ("cnf", "cnf_key"),
    ("measurements", "measurements"),
)


def check_device_profile(claims: EatClaims) -> EatClaims:
    """Check the claims of :data:`DEVICE_PROFILE`; return them or raise :class:`ClaimError`.

    Presence and shape only; whether debug is allowed or the measurements are right is policy
    (appraisal).
    """
    if claims.eat_profile != DEVICE_PROFILE:
        raise ClaimError(f"eat_profile is {claims.eat_profile!r}, expected {DEVICE_PROFILE!r}")
    missing = [name for name, attr in PROFILE_REQUIRED_CLAIMS if getattr(claims, attr) is None]
    if missing:
        raise ClaimError(f"the {DEVICE_PROFILE} profile requires claim(s): {', '.join(missing)}")
    if not isinstance(claims.nonce, bytes):
        raise ClaimError("the device profile carries exactly one nonce")
    if not claims.measurements or len(claims.device_measurements) != len(claims.measurements):
        raise ClaimError("the device profile needs measurements in its own format")
    names = [m.name for m in claims.device_measurements]
    if len(set(names)) != len(names):
        raise ClaimError("measurement names must be unique")
    return claims
