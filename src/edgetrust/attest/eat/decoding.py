"""Decoding a claims-set map into typed :class:`~edgetrust.attest.eat.EatClaims` (general path).

A device-profile claims-set of the usual form is decoded by the straight line of
:mod:`edgetrust.attest.eat.device_profile`; every other claims-set goes through the loop of
:func:`_decode_claims`, one decoder per registered claim (:data:`_DECODERS`), unknown claims kept
in ``extra``. The loop accepts a value of the claim's exact fast type as it is and gives every
other value to the claim's decoder, which accepts it or raises the precise
:class:`~edgetrust.errors.ClaimError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from edgetrust.attest import cbor
from edgetrust.attest.eat.cnf import decode_cnf
from edgetrust.attest.eat.device_profile import _PROFILE_KEYS, _device_profile_claims
from edgetrust.attest.eat.drafts import set_class
from edgetrust.attest.eat.measurements import (
    Measurement,
    _PendingMeasurements,
    decode_measurement_report,
)
from edgetrust.attest.eat.model import (
    _EAT_FIELDS,
    EatClaims,
    Submodule,
    TypedContent,
    _EatClaimsDraft,
)
from edgetrust.attest.eat.values import (
    _array,
    _bool,
    _bytes,
    _dbgstat,
    _location,
    _nonce,
    _oemid,
    _profile,
    _sueids,
    _text,
    _time,
    _typed_contents,
    _uint,
    _version,
)
from edgetrust.attest.eat.vocabulary import (
    DEVICE_PROFILE,
    HWMODEL_MAX,
    HWMODEL_MIN,
    MAX_SUBMOD_DEPTH,
    NONCE_MAX,
    NONCE_MIN,
    UEID_MAX,
    UEID_MIN,
    Claim,
)
from edgetrust.errors import ClaimError

__all__ = ["decode_claims"]


def _measurements(
    value: object, profile: object, _depth: int = 0
) -> tuple[Measurement | TypedContent, ...] | _PendingMeasurements:
    # the device profile's measurement reports, else typed contents kept as received
    if profile != DEVICE_PROFILE:
        return _typed_contents(value, Claim.MEASUREMENTS)
    return decode_measurement_report(value)


def _submods(value: object, depth: int) -> dict[str, Submodule]:
    if not cbor.is_map(value) or not value:
        raise ClaimError("claim submods must be a non-empty map")
    out: dict[str, Submodule] = {}
    for name, sub in value.items():  # type: ignore[attr-defined]
        if not isinstance(name, str):
            raise ClaimError("submodule names must be text")
        if cbor.is_map(sub):
            if depth + 1 > MAX_SUBMOD_DEPTH:
                raise ClaimError(f"submods nested deeper than {MAX_SUBMOD_DEPTH}")
            out[name] = _decode_claims(sub, depth + 1)
        elif isinstance(sub, bytes) or cbor.is_array(sub):
            out[name] = sub if isinstance(sub, bytes) else tuple(sub)  # nested token or digest
        else:
            raise ClaimError(f"submodule {name!r} is neither a claims-set nor a nested token")
    return out


# claim key -> (attribute, decoder(value, profile, depth)); one entry per registered claim.
_Decoder: TypeAlias = Callable[[Any, Any, int], Any]
_DECODERS: Final[dict[int, tuple[str, _Decoder]]] = {
    Claim.ISS: ("iss", lambda v, p, d: _text(v, Claim.ISS)),
    Claim.SUB: ("sub", lambda v, p, d: _text(v, Claim.SUB)),
    Claim.AUD: ("aud", lambda v, p, d: _text(v, Claim.AUD)),
    Claim.EXP: ("exp", lambda v, p, d: _time(v, Claim.EXP)),
    Claim.NBF: ("nbf", lambda v, p, d: _time(v, Claim.NBF)),
    Claim.IAT: ("iat", lambda v, p, d: _time(v, Claim.IAT)),
    Claim.CTI: ("cti", lambda v, p, d: _bytes(v, Claim.CTI)),
    Claim.CNF: ("cnf", decode_cnf),
    Claim.EAT_NONCE: ("nonce", lambda v, p, d: _nonce(v)),
    Claim.UEID: ("ueid", lambda v, p, d: _bytes(v, Claim.UEID, UEID_MIN, UEID_MAX)),
    Claim.SUEIDS: ("sueids", lambda v, p, d: _sueids(v)),
    Claim.OEMID: ("oemid", _oemid),
    Claim.HWMODEL: (
        "hwmodel",
        lambda v, p, d: _bytes(v, Claim.HWMODEL, HWMODEL_MIN, HWMODEL_MAX),
    ),
    Claim.HWVERSION: ("hwversion", lambda v, p, d: _version(v, Claim.HWVERSION)),
    Claim.UPTIME: ("uptime", lambda v, p, d: _uint(v, Claim.UPTIME)),
    Claim.OEMBOOT: ("oemboot", lambda v, p, d: _bool(v, Claim.OEMBOOT)),
    Claim.DBGSTAT: ("dbgstat", _dbgstat),
    Claim.LOCATION: ("location", lambda v, p, d: _location(v)),
    Claim.EAT_PROFILE: ("eat_profile", lambda v, p, d: _profile(v)),
    Claim.SUBMODS: ("submods", lambda v, p, d: _submods(v, d)),
    Claim.BOOTCOUNT: ("bootcount", lambda v, p, d: _uint(v, Claim.BOOTCOUNT)),
    Claim.BOOTSEED: ("bootseed", lambda v, p, d: _bytes(v, Claim.BOOTSEED)),
    Claim.DLOAS: ("dloas", lambda v, p, d: _array(v, Claim.DLOAS)),
    Claim.SWNAME: ("swname", lambda v, p, d: _text(v, Claim.SWNAME)),
    Claim.SWVERSION: ("swversion", lambda v, p, d: _version(v, Claim.SWVERSION)),
    Claim.MANIFESTS: ("manifests", lambda v, p, d: _typed_contents(v, Claim.MANIFESTS)),
    Claim.MEASUREMENTS: ("measurements", _measurements),
    Claim.MEASRES: ("measres", lambda v, p, d: _array(v, Claim.MEASRES)),
    Claim.INTUSE: ("intuse", lambda v, p, d: _uint(v, Claim.INTUSE)),
}


# Claim key -> (field position in _EAT_FIELDS, fast type, lo, hi, decoder). A value whose type is
# exactly the fast type and, for byte and text strings, whose length is in lo..hi (for integers:
# at least lo) is accepted as it is; any other value goes to the claim's decoder, which accepts
# it (floats, arrays, subclasses...) or raises the claim's ClaimError. The fast checks accept
# nothing the decoder would refuse.
_ANY_LENGTH: Final = 1 << 62
_FAST: Final[dict[int, tuple[type | None, float, int]]] = {
    Claim.ISS: (str, 0, _ANY_LENGTH),
    Claim.SUB: (str, 0, _ANY_LENGTH),
    Claim.AUD: (str, 0, _ANY_LENGTH),
    Claim.EXP: (int, -math.inf, 0),
    Claim.NBF: (int, -math.inf, 0),
    Claim.IAT: (int, -math.inf, 0),
    Claim.CTI: (bytes, 0, _ANY_LENGTH),
    Claim.EAT_NONCE: (bytes, NONCE_MIN, NONCE_MAX),
    Claim.UEID: (bytes, UEID_MIN, UEID_MAX),
    Claim.HWMODEL: (bytes, HWMODEL_MIN, HWMODEL_MAX),
    Claim.UPTIME: (int, 0, 0),
    Claim.OEMBOOT: (bool, 0, 0),
    Claim.EAT_PROFILE: (str, 0, _ANY_LENGTH),
    Claim.BOOTCOUNT: (int, 0, 0),
    Claim.BOOTSEED: (bytes, 0, _ANY_LENGTH),
    Claim.SWNAME: (str, 0, _ANY_LENGTH),
    Claim.INTUSE: (int, 0, 0),
}
_SLOT_INDEX: Final = {name: i for i, name in enumerate(_EAT_FIELDS)}
_CNF_INDEX: Final = -1  # cnf fills two slots: cnf_key and cnf_kid
_SPECS: Final[dict[int, tuple[int, type | None, float, int, _Decoder]]] = {
    int(key): (
        _CNF_INDEX if attr == "cnf" else _SLOT_INDEX[attr],
        *_FAST.get(key, (None, 0, 0)),
        decode,
    )
    for key, (attr, decode) in _DECODERS.items()
}
_CNF_KEY_INDEX: Final = _SLOT_INDEX["cnf_key"]
_CNF_KID_INDEX: Final = _SLOT_INDEX["cnf_kid"]
_EXTRA_INDEX: Final = _SLOT_INDEX["extra"]
_EAT_PROFILE_KEY: Final = int(Claim.EAT_PROFILE)
# every EatClaims field at its default (all None) but ``extra``, which each decode fills anew
_NO_CLAIMS: Final = [
    None if f.name == "extra" else f.default for f in dataclasses.fields(EatClaims)
]


def decode_claims(claims: Mapping[Any, Any], *, _depth: int = 0) -> EatClaims:
    """Typed claims from a decoded claims-set map; :class:`ClaimError` for wrong types.

    Every object is built here, the ``cnf`` key included (its point validated).
    """
    decoded = _decode_claims(claims, _depth)
    _build_deferred(decoded)
    return decoded


def _decode_claims(claims: Mapping[Any, Any], _depth: int) -> EatClaims:
    """decode_claims, leaving the cnf key and the measurements to be built on first read."""
    if type(claims) is dict:
        if len(claims) == len(_PROFILE_KEYS):
            profile_claims = _device_profile_claims(claims)
            if profile_claims is not None:
                return profile_claims
    elif not cbor.is_map(claims):
        raise ClaimError("the claims-set must be a map")
    profile = claims.get(_EAT_PROFILE_KEY)
    values = _NO_CLAIMS.copy()
    extra: dict[int | str, Any] = {}
    specs = _SPECS
    for key, value in claims.items():
        spec = specs.get(key)
        if spec is None or type(key) is not int:  # (True == 1 and 1.0 == 1 find a spec too)
            kind = type(key)
            if kind is str:
                extra[key] = value
                continue
            if not isinstance(key, int) or kind is bool:
                raise ClaimError(f"claim key {key!r} is neither an integer nor text")
            key = int(key)  # an IntEnum label  # noqa: PLW2901
            spec = specs.get(key)
            if spec is None:
                if key == 0:
                    raise ClaimError("claim key 0 is reserved (RFC 8392)")
                extra[key] = value
                continue
        index, fast, lo, hi, decode = spec
        kind = type(value)
        if kind is fast and (
            lo <= len(value) <= hi if kind is bytes or kind is str else kind is bool or value >= lo
        ):
            values[index] = value
        elif index == _CNF_INDEX:
            values[_CNF_KEY_INDEX], values[_CNF_KID_INDEX] = decode(value, profile, _depth)
        else:
            values[index] = decode(value, profile, _depth)
    values[_EXTRA_INDEX] = extra
    # every value was validated above: build through the draft (see eat.drafts)
    out = _EatClaimsDraft(*values)
    set_class(out, "__class__", EatClaims)
    return out  # type: ignore[no-any-return]


def _build_deferred(claims: EatClaims) -> None:
    for name in _DEFERRED_FIELDS:
        getattr(claims, name)  # reading a deferred field builds it (see model._ResolvingSlot)
    for sub in (claims.submods or {}).values():
        if isinstance(sub, EatClaims):
            _build_deferred(sub)


_DEFERRED_FIELDS: Final = ("cnf_key", "measurements")
