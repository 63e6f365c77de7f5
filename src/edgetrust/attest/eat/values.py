"""Type checks of the registered claim values (RFC 8392, RFC 8747, RFC 9711 section 4).

One function per claim value type; each returns the value (or the typed object built from it)
or raises the claim's :class:`~edgetrust.errors.ClaimError`. The decoders of
:mod:`edgetrust.attest.eat.decoding` and :mod:`edgetrust.attest.eat.device_profile` apply them.
"""

from __future__ import annotations

import math
from typing import Any, Final

from edgetrust.attest import cbor
from edgetrust.attest.eat.drafts import set_class
from edgetrust.attest.eat.model import TypedContent, Version, _VersionDraft
from edgetrust.attest.eat.vocabulary import (
    CLAIM_NAMES,
    NONCE_MAX,
    NONCE_MIN,
    UEID_MAX,
    UEID_MIN,
    Claim,
    DebugStatus,
)
from edgetrust.errors import ClaimError

# dbgstat value -> DebugStatus (a dict lookup, cheaper than the enum call)
_DEBUG_STATUS: Final = {d.value: d for d in DebugStatus}
#: ``_DEBUG_STATUS.get``: the DebugStatus of a dbgstat value, or None.
# (Bound once for the other modules: in CPython 3.11 a method call on an imported name
# compiles to LOAD_ATTR, which builds a bound method on every call, not LOAD_METHOD.)
_debug_status: Final = _DEBUG_STATUS.get


def _name(key: int) -> str:
    return CLAIM_NAMES.get(key, str(key))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object, key: int) -> str:
    if not isinstance(value, str):
        raise ClaimError(f"claim {_name(key)} must be text")
    return value


def _bytes(value: object, key: int, lo: int = 0, hi: int | None = None) -> bytes:
    if not isinstance(value, bytes):
        raise ClaimError(f"claim {_name(key)} must be a byte string")
    if len(value) < lo or (hi is not None and len(value) > hi):
        raise ClaimError(f"claim {_name(key)} must be {lo}..{hi} bytes, got {len(value)}")
    return value


def _time(value: object, key: int) -> int | float:
    # RFC 8392 NumericDate: an integer or floating-point number, untagged (RFC 9711 ~time).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClaimError(f"claim {_name(key)} must be a NumericDate (integer or float)")
    if isinstance(value, float) and math.isnan(value):
        raise ClaimError(f"claim {_name(key)} is not a number")
    return value


def _uint(value: object, key: int) -> int:
    if not _is_int(value) or value < 0:  # type: ignore[operator]
        raise ClaimError(f"claim {_name(key)} must be an unsigned integer")
    return value  # type: ignore[return-value]


def _version(value: object, key: int) -> Version:
    # hardware-version-type / sw-version-type = [ version: tstr, ? scheme: $version-scheme ]
    if not cbor.is_array(value) or not 1 <= len(value) <= 2:  # type: ignore[arg-type]
        raise ClaimError(f"claim {_name(key)} must be [version, ? scheme]")
    items: tuple[Any, ...] = tuple(value)  # type: ignore[arg-type]
    version = items[0]
    scheme = items[1] if len(items) == 2 else None
    if not isinstance(version, str):
        raise ClaimError(f"claim {_name(key)}: version must be text")
    if scheme is not None and (isinstance(scheme, bool) or not isinstance(scheme, (int, str))):
        raise ClaimError(f"claim {_name(key)}: version scheme must be an integer or text")
    built = _VersionDraft(version, scheme)
    set_class(built, "__class__", Version)
    return built  # type: ignore[no-any-return]


def _typed_contents(value: object, key: int) -> tuple[TypedContent, ...]:
    if not cbor.is_array(value) or not value:
        raise ClaimError(f"claim {_name(key)} must be a non-empty array")
    out = []
    for entry in value:  # type: ignore[attr-defined]
        if not cbor.is_array(entry) or len(entry) != 2:
            raise ClaimError(f"claim {_name(key)}: each entry must be [content-type, content]")
        content_format, content = entry
        if not _is_int(content_format) or not 0 <= content_format <= 65535:
            raise ClaimError(f"claim {_name(key)}: content-type must be a CoAP content-format")
        out.append(TypedContent(content_format=content_format, content=content))
    return tuple(out)


def _nonce(value: object) -> bytes | tuple[bytes, ...]:
    # nonce-label => nonce-type / [ 2* nonce-type ]
    if isinstance(value, bytes):
        return _bytes(value, Claim.EAT_NONCE, NONCE_MIN, NONCE_MAX)
    if cbor.is_array(value) and len(value) >= 2:  # type: ignore[arg-type]
        return tuple(_bytes(v, Claim.EAT_NONCE, NONCE_MIN, NONCE_MAX) for v in value)  # type: ignore[attr-defined]
    raise ClaimError("claim eat_nonce must be a byte string or an array of two or more")


def _location(value: object) -> dict[int, Any]:
    # location-type: latitude (1) and longitude (2) numbers are required; 3..9 optional.
    if not cbor.is_map(value):
        raise ClaimError("claim location must be a map")
    loc: dict[Any, Any] = dict(value)  # type: ignore[call-overload]
    for label in (1, 2):
        number = loc.get(label)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ClaimError("claim location needs numeric latitude (1) and longitude (2)")
    return loc


def _oemid(value: object, _profile: object = None, _depth: int = 0) -> int | bytes:
    if type(value) is bytes and len(value) in (3, 16):
        return value  # IEEE OUI (3) or random (16)
    if _is_int(value):
        return value  # type: ignore[return-value]  # IANA Private Enterprise Number
    if isinstance(value, bytes) and len(value) in (3, 16):
        return value  # IEEE OUI (3) or random (16)
    raise ClaimError("claim oemid must be a PEN, a 3-byte OUI or 16 random bytes")


def _bool(value: object, key: int) -> bool:
    if not isinstance(value, bool):
        raise ClaimError(f"claim {_name(key)} must be a boolean")
    return value


def _dbgstat(value: object, _profile: object = None, _depth: int = 0) -> DebugStatus:
    if type(value) is int:
        status = _DEBUG_STATUS.get(value)
        if status is not None:
            return status
    if not _is_int(value) or value not in _DEBUG_STATUS:
        raise ClaimError(f"claim dbgstat has unknown value {value!r}")
    return _DEBUG_STATUS[value]


def _sueids(value: object) -> dict[str, bytes]:
    if not cbor.is_map(value) or not value:
        raise ClaimError("claim sueids must be a non-empty map")
    return {
        _text(n, Claim.SUEIDS): _bytes(u, Claim.SUEIDS, UEID_MIN, UEID_MAX)
        for n, u in value.items()  # type: ignore[attr-defined]
    }


def _array(value: object, key: int) -> tuple[Any, ...]:
    if not cbor.is_array(value) or not value:
        raise ClaimError(f"claim {_name(key)} must be a non-empty array")
    return tuple(value)  # type: ignore[arg-type]


def _profile(value: object) -> str | bytes:
    if not isinstance(value, (str, bytes)):
        raise ClaimError("claim eat_profile must be a URI (text) or an OID (bytes)")
    return value
