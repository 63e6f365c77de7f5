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
"""

from __future__ import annotations

import dataclasses
import hmac
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, Final, TypeAlias

from edgetrust.attest import cbor, cose
from edgetrust.attest.cose import Mac0Message, PublicKey, Sign1Message
from edgetrust.attest.keys import decode_cose_key, encode_cose_key
from edgetrust.errors import ClaimError, FreshnessError, NonceError

__all__ = [
    "CLAIM_NAMES",
    "CWT_TAG",
    "DEVICE_PROFILE",
    "MEASUREMENT_CONTENT_FORMAT",
    "Claim",
    "DebugStatus",
    "EatClaims",
    "IntendedUse",
    "Measurement",
    "TypedContent",
    "Version",
    "check_device_profile",
    "decode_claims",
    "decode_eat",
    "encode_claims",
    "jsonable",
    "make_eat",
    "verify_eat",
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    """``hwversion`` / ``swversion``: a version text and an optional CoSWID version scheme."""

    version: str
    scheme: int | str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TypedContent:
    """A ``[content-type, content]`` entry of ``manifests`` or ``measurements`` kept as received."""

    content_format: int
    content: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """One measurement of our device profile (see the module documentation)."""

    name: str
    digest_alg: str
    digest: bytes
    version: str | None = None
    svn: int | None = None
    layer: int | None = None

    def to_cbor(self) -> dict[int, Any]:
        out: dict[int, Any] = {1: self.name, 2: self.digest_alg, 3: self.digest}
        if self.version is not None:
            out[4] = self.version
        if self.svn is not None:
            out[5] = self.svn
        if self.layer is not None:
            out[6] = self.layer
        return out

    @classmethod
    def from_cbor(cls, value: object) -> Measurement:
        if not cbor.is_map(value):
            raise ClaimError("a measurement must be a map")
        m: Mapping[Any, Any] = value  # type: ignore[assignment]
        if not m.keys() <= _MEASUREMENT_FIELDS:
            unknown = sorted(map(str, m.keys() - _MEASUREMENT_FIELDS))
            raise ClaimError(f"unknown measurement field(s) {unknown}")
        name, alg, digest = m.get(1), m.get(2), m.get(3)
        if type(name) is not str or not name:
            raise ClaimError("measurement name (1) must be non-empty text")
        size = DIGEST_SIZES.get(alg) if type(alg) is str else None
        if size is None:
            raise ClaimError(f"measurement {name!r}: unsupported digest algorithm {alg!r}")
        if type(digest) is not bytes or len(digest) != size:
            raise ClaimError(f"measurement {name!r}: digest must be {size} bytes")
        version, svn, layer = m.get(4), m.get(5), m.get(6)
        if version is not None and type(version) is not str:
            raise ClaimError(f"measurement {name!r}: version (4) must be text")
        for what, number in (("svn (5)", svn), ("layer (6)", layer)):
            if number is not None and (type(number) is not int or number < 0):
                raise ClaimError(f"measurement {name!r}: {what} must be an unsigned integer")
        # validated above: build without the frozen-dataclass __init__ (hot path of verify_eat)
        measurement = object.__new__(cls)
        _M_NAME(measurement, name)
        _M_ALG(measurement, alg)
        _M_DIGEST(measurement, digest)
        _M_VERSION(measurement, version)
        _M_SVN(measurement, svn)
        _M_LAYER(measurement, layer)
        return measurement


_set: Final = object.__setattr__
_MEASUREMENT_FIELDS: Final = frozenset({1, 2, 3, 4, 5, 6})
# slot setters of Measurement (the frozen instance is written once, after validation)
_M_NAME, _M_ALG, _M_DIGEST, _M_VERSION, _M_SVN, _M_LAYER = (
    getattr(Measurement, name).__set__
    for name in ("name", "digest_alg", "digest", "version", "svn", "layer")
)
Submodule: TypeAlias = "EatClaims | bytes | tuple[Any, ...]"


@dataclass(frozen=True, slots=True, kw_only=True)
class EatClaims:
    """A typed EAT / CWT claims-set. Every field is optional; ``extra`` keeps unknown claims."""

    iss: str | None = None
    sub: str | None = None
    aud: str | None = None
    exp: int | float | None = None
    nbf: int | float | None = None
    iat: int | float | None = None
    cti: bytes | None = None
    cnf_key: PublicKey | None = None
    cnf_kid: bytes | None = None
    nonce: bytes | tuple[bytes, ...] | None = None
    ueid: bytes | None = None
    sueids: Mapping[str, bytes] | None = None
    oemid: int | bytes | None = None
    hwmodel: bytes | None = None
    hwversion: Version | None = None
    uptime: int | None = None
    oemboot: bool | None = None
    dbgstat: DebugStatus | None = None
    location: Mapping[int, Any] | None = None
    eat_profile: str | bytes | None = None
    submods: Mapping[str, Submodule] | None = None
    bootcount: int | None = None
    bootseed: bytes | None = None
    dloas: tuple[Any, ...] | None = None
    swname: str | None = None
    swversion: Version | None = None
    manifests: tuple[TypedContent, ...] | None = None
    measurements: tuple[Measurement | TypedContent, ...] | None = None
    measres: tuple[Any, ...] | None = None
    intuse: int | None = None
    extra: Mapping[int | str, Any] = field(default_factory=dict)

    def nonces(self) -> tuple[bytes, ...]:
        """All nonces (``eat_nonce`` may hold one or several)."""
        if self.nonce is None:
            return ()
        return (self.nonce,) if isinstance(self.nonce, bytes) else tuple(self.nonce)

    @property
    def device_measurements(self) -> tuple[Measurement, ...]:
        """The measurements in our profile's format."""
        return tuple(m for m in self.measurements or () if isinstance(m, Measurement))

    def to_json(self) -> dict[str, Any]:
        """The claims with their registered names, JSON-ready (bytes as lowercase hex).

        Our profile's measurements appear as objects (name, digest_alg, digest, version, svn,
        layer); ``cnf`` as ``{"cose_key": {...}}`` or ``{"kid": ...}``; submods recursively.
        """
        out: dict[str, Any] = {}
        for key, value in encode_claims_map(self).items():
            name = CLAIM_NAMES.get(key, str(key)) if isinstance(key, int) else key
            out[name] = jsonable(value)
        if self.measurements is not None:
            out["measurements"] = [_measurement_json(m) for m in self.measurements]
        if self.cnf_key is not None:
            cose_key = encode_cose_key(self.cnf_key)
            names = {1: "kty", -1: "crv", -2: "x", -3: "y"}
            out["cnf"] = {
                "cose_key": {names.get(k, str(k)): jsonable(v) for k, v in cose_key.items()}
            }
        elif self.cnf_kid is not None:
            out["cnf"] = {"kid": self.cnf_kid.hex()}
        if self.submods is not None:
            out["submods"] = {
                n: s.to_json() if isinstance(s, EatClaims) else jsonable(s)
                for n, s in self.submods.items()
            }
        return out


# (slot setter, field name, default) of every EatClaims field but ``extra``: the slot descriptors
# write the frozen instance directly when the decoder has validated every value.
_EAT_SLOTS: Final = tuple(
    (getattr(EatClaims, f.name).__set__, f.name, f.default)
    for f in dataclasses.fields(EatClaims)
    if f.name != "extra"
)


def _measurement_json(m: Measurement | TypedContent) -> dict[str, Any]:
    if isinstance(m, TypedContent):
        return {"content_format": m.content_format, "content": jsonable(m.content)}
    return {
        "name": m.name,
        "digest_alg": m.digest_alg,
        "digest": m.digest.hex(),
        "version": m.version,
        "svn": m.svn,
        "layer": m.layer,
    }


# --------------------------------------------------------------------------------------------
# Value checks
# --------------------------------------------------------------------------------------------


def _name(key: int) -> str:
    return CLAIM_NAMES.get(key, str(key))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_uint(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value < 0:  # type: ignore[operator]
        raise ClaimError(f"{what} must be an unsigned integer")
    return value  # type: ignore[return-value]


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
    return Version(version=version, scheme=scheme)


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


def _measurements(value: object, *, profile: object) -> tuple[Measurement | TypedContent, ...]:
    if profile != DEVICE_PROFILE:
        return _typed_contents(value, Claim.MEASUREMENTS)
    if not cbor.is_array(value) or not value:
        raise ClaimError("claim measurements must be a non-empty array")
    out: list[Measurement | TypedContent] = []
    for entry in value:  # type: ignore[attr-defined]
        if (
            not cbor.is_array(entry)
            or len(entry) != 2
            or type(entry[0]) is not int
            or entry[0] != MEASUREMENT_CONTENT_FORMAT
            or type(entry[1]) is not bytes
        ):
            raise ClaimError(
                f"measurements of the {DEVICE_PROFILE} profile must be "
                f"[{MEASUREMENT_CONTENT_FORMAT}, bstr .cbor [+ measurement]]"
            )
        report = cbor.loads(entry[1], expect=list)
        if not report:
            raise ClaimError("an empty measurement report")
        out.extend(map(Measurement.from_cbor, report))
    return tuple(out)


def _nonce(value: object) -> bytes | tuple[bytes, ...]:
    # nonce-label => nonce-type / [ 2* nonce-type ]
    if isinstance(value, bytes):
        return _bytes(value, Claim.EAT_NONCE, NONCE_MIN, NONCE_MAX)
    if cbor.is_array(value) and len(value) >= 2:  # type: ignore[arg-type]
        return tuple(_bytes(v, Claim.EAT_NONCE, NONCE_MIN, NONCE_MAX) for v in value)  # type: ignore[attr-defined]
    raise ClaimError("claim eat_nonce must be a byte string or an array of two or more")


def _cnf(value: object) -> tuple[PublicKey | None, bytes | None]:
    # RFC 8747 section 3: exactly one confirmation method.
    if not cbor.is_map(value) or len(value) != 1:  # type: ignore[arg-type]
        raise ClaimError("claim cnf must be a map with exactly one confirmation method")
    ((method, content),) = value.items()  # type: ignore[attr-defined]
    if method == 1:
        key = decode_cose_key(content, error=ClaimError)
        if isinstance(key, cose.SymmetricKey):
            raise ClaimError("claim cnf: a symmetric COSE_Key cannot confirm a TLS key")
        return key, None  # type: ignore[return-value]
    if method == 3:
        return None, _bytes(content, Claim.CNF)
    raise ClaimError(f"claim cnf: unsupported confirmation method {method!r}")


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
            out[name] = decode_claims(sub, _depth=depth + 1)
        elif isinstance(sub, bytes) or cbor.is_array(sub):
            out[name] = sub if isinstance(sub, bytes) else tuple(sub)  # nested token or digest
        else:
            raise ClaimError(f"submodule {name!r} is neither a claims-set nor a nested token")
    return out


# --------------------------------------------------------------------------------------------
# Decoding and encoding claims
# --------------------------------------------------------------------------------------------


def _oemid(value: object) -> int | bytes:
    if _is_int(value):
        return value  # type: ignore[return-value]  # IANA Private Enterprise Number
    if isinstance(value, bytes) and len(value) in (3, 16):
        return value  # IEEE OUI (3) or random (16)
    raise ClaimError("claim oemid must be a PEN, a 3-byte OUI or 16 random bytes")


def _bool(value: object, key: int) -> bool:
    if not isinstance(value, bool):
        raise ClaimError(f"claim {_name(key)} must be a boolean")
    return value


def _dbgstat(value: object) -> DebugStatus:
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


_DEBUG_STATUS: Final = {d.value: d for d in DebugStatus}

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
    Claim.CNF: ("cnf", lambda v, p, d: _cnf(v)),
    Claim.EAT_NONCE: ("nonce", lambda v, p, d: _nonce(v)),
    Claim.UEID: ("ueid", lambda v, p, d: _bytes(v, Claim.UEID, UEID_MIN, UEID_MAX)),
    Claim.SUEIDS: ("sueids", lambda v, p, d: _sueids(v)),
    Claim.OEMID: ("oemid", lambda v, p, d: _oemid(v)),
    Claim.HWMODEL: (
        "hwmodel",
        lambda v, p, d: _bytes(v, Claim.HWMODEL, HWMODEL_MIN, HWMODEL_MAX),
    ),
    Claim.HWVERSION: ("hwversion", lambda v, p, d: _version(v, Claim.HWVERSION)),
    Claim.UPTIME: ("uptime", lambda v, p, d: _uint(v, Claim.UPTIME)),
    Claim.OEMBOOT: ("oemboot", lambda v, p, d: _bool(v, Claim.OEMBOOT)),
    Claim.DBGSTAT: ("dbgstat", lambda v, p, d: _dbgstat(v)),
    Claim.LOCATION: ("location", lambda v, p, d: _location(v)),
    Claim.EAT_PROFILE: ("eat_profile", lambda v, p, d: _profile(v)),
    Claim.SUBMODS: ("submods", lambda v, p, d: _submods(v, d)),
    Claim.BOOTCOUNT: ("bootcount", lambda v, p, d: _uint(v, Claim.BOOTCOUNT)),
    Claim.BOOTSEED: ("bootseed", lambda v, p, d: _bytes(v, Claim.BOOTSEED)),
    Claim.DLOAS: ("dloas", lambda v, p, d: _array(v, Claim.DLOAS)),
    Claim.SWNAME: ("swname", lambda v, p, d: _text(v, Claim.SWNAME)),
    Claim.SWVERSION: ("swversion", lambda v, p, d: _version(v, Claim.SWVERSION)),
    Claim.MANIFESTS: ("manifests", lambda v, p, d: _typed_contents(v, Claim.MANIFESTS)),
    Claim.MEASUREMENTS: ("measurements", lambda v, p, d: _measurements(v, profile=p)),
    Claim.MEASRES: ("measres", lambda v, p, d: _array(v, Claim.MEASRES)),
    Claim.INTUSE: ("intuse", lambda v, p, d: _uint(v, Claim.INTUSE)),
}


# --------------------------------------------------------------------------------------------
# Decoding and encoding claims
# --------------------------------------------------------------------------------------------


def decode_claims(claims: Mapping[Any, Any], *, _depth: int = 0) -> EatClaims:
    """Typed claims from a decoded claims-set map; :class:`ClaimError` for wrong types."""
    if not cbor.is_map(claims):
        raise ClaimError("the claims-set must be a map")
    profile = claims.get(Claim.EAT_PROFILE)
    kw: dict[str, Any] = {}
    extra: dict[int | str, Any] = {}
    for key, value in claims.items():
        kind = type(key)
        if kind is not int and kind is not str:
            if not isinstance(key, int) or kind is bool:
                raise ClaimError(f"claim key {key!r} is neither an integer nor text")
            key = int(key)  # an IntEnum label  # noqa: PLW2901
            kind = int
        entry = _DECODERS.get(key) if kind is int else None
        if entry is not None:
            attr, decode = entry
            if attr == "cnf":
                kw["cnf_key"], kw["cnf_kid"] = decode(value, profile, _depth)
            else:
                kw[attr] = decode(value, profile, _depth)
        elif key == 0 and kind is int:
            raise ClaimError("claim key 0 is reserved (RFC 8392)")
        else:
            extra[key] = value
    kw["extra"] = extra
    return _build_claims(kw)


def _build_claims(fields: dict[str, Any]) -> EatClaims:
    # Every value was validated by its decoder: build without the frozen-dataclass __init__ (the
    # hot path of verify_eat); unset fields take their declared defaults.
    claims = object.__new__(EatClaims)
    get = fields.get
    for set_slot, name, default in _EAT_SLOTS:
        set_slot(claims, get(name, default))
    _set(claims, "extra", fields["extra"])
    return claims


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


def encode_claims_map(claims: EatClaims) -> dict[int | str, Any]:
    """The CBOR claims-set map of ``claims`` (inverse of :func:`decode_claims`)."""
    out: dict[int | str, Any] = {}
    for key in Claim:
        name = key.name.lower()
        if key is Claim.CNF:
            if claims.cnf_key is not None:
                out[int(key)] = {1: encode_cose_key(claims.cnf_key)}
            elif claims.cnf_kid is not None:
                out[int(key)] = {3: claims.cnf_kid}
            continue
        if key is Claim.MEASUREMENTS and claims.measurements is not None:
            out[int(key)] = _encode_measurements(claims.measurements)
            continue
        value = getattr(claims, "nonce" if key is Claim.EAT_NONCE else name)
        if value is None:
            continue
        out[int(key)] = _encode_value(value)
    for k, v in claims.extra.items():
        if k in out:
            raise ClaimError(f"extra claim {k!r} duplicates a registered claim")
        out[k] = v
    return out


def _encode_measurements(entries: tuple[Measurement | TypedContent, ...]) -> list[Any]:
    # Our measurements travel together as one report, [60, << [+ measurement] >>], placed where
    # the first of them stands; other entries are kept as they are.
    out: list[Any] = []
    report = [m.to_cbor() for m in entries if isinstance(m, Measurement)]
    for entry in entries:
        if isinstance(entry, TypedContent):
            out.append([entry.content_format, entry.content])
        elif report:
            out.append([MEASUREMENT_CONTENT_FORMAT, cbor.dumps(report)])
            report = []
    return out


def _encode_value(value: Any) -> Any:
    if isinstance(value, EatClaims):
        return encode_claims_map(value)
    if isinstance(value, Version):
        return [value.version] if value.scheme is None else [value.version, value.scheme]
    if isinstance(value, TypedContent):
        return [value.content_format, value.content]
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, Mapping):
        return {k: _encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_value(v) for v in value]
    return value


def encode_claims(claims: EatClaims) -> bytes:
    """Deterministic CBOR of the claims-set (the CWT payload)."""
    return cbor.dumps(encode_claims_map(claims))


def jsonable(value: Any) -> Any:
    """A JSON-ready view of a decoded CBOR value: bytes as lowercase hex, tags as objects."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, cbor.Tag):
        return {"tag": value.tag, "value": jsonable(value.value)}
    if cbor.is_map(value):
        return {str(k) if not isinstance(k, str) else k: jsonable(v) for k, v in value.items()}
    if cbor.is_array(value):
        return [jsonable(v) for v in value]
    return repr(value)


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def make_eat(
    claims: EatClaims,
    signing_key: cose.SigningKey,
    *,
    alg: cose.Algorithm | None = None,
    kid: bytes | None = None,
    cwt_tag: bool = False,
) -> bytes:
    """A signed EAT: COSE_Sign1 (tag 18) for a private key, COSE_Mac0 (tag 17) for an HMAC key.

    With ``cwt_tag`` the message is also wrapped in the CWT tag 61.
    """
    payload = encode_claims(claims)
    if isinstance(signing_key, cose.SymmetricKey):
        token = cose.mac0(
            payload, signing_key, alg=alg or cose.Algorithm.HMAC_256_256, kid=kid, tagged=True
        )
    else:
        token = cose.sign1(payload, signing_key, alg=alg, kid=kid, tagged=True)
    if cwt_tag:
        return cbor.dumps(cbor.Tag(CWT_TAG, cbor.loads(token)))
    return token


def _message(token: bytes, max_size: int) -> Sign1Message | Mac0Message:
    # tagged: Sign1 (18) or Mac0 (17); untagged: read as a Sign1
    msg = cose.decode_message(token, outer_tags=(CWT_TAG,), untagged_as="sign1", max_size=max_size)
    if msg.payload is None:
        raise ClaimError("the EAT has a detached payload")
    return msg


def _claims(msg: Sign1Message | Mac0Message, max_size: int) -> EatClaims:
    return decode_claims(cbor.loads(msg.payload or b"", max_size=max_size, expect=dict))


def decode_eat(
    token: bytes, *, max_size: int = cbor.DEFAULT_MAX_SIZE
) -> tuple[Sign1Message | Mac0Message, EatClaims]:
    """Decode (do not verify) an EAT: the COSE message and its typed claims.

    Tagged tokens may be COSE_Sign1 (18) or COSE_Mac0 (17), optionally inside the CWT tag 61;
    an untagged token is read as a COSE_Sign1.
    """
    msg = _message(token, max_size)
    return msg, _claims(msg, max_size)


def _check_time(
    claims: EatClaims, now: datetime | None, max_age: timedelta | None, leeway: timedelta
) -> None:
    if now is None:
        if claims.exp is not None or claims.nbf is not None or max_age is not None:
            raise FreshnessError("the token has exp/nbf (or max_age is set) but no time was given")
        return
    at = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    slack = leeway.total_seconds()
    # RFC 8392 section 3.1.4-3.1.6 (the RFC 7519 processing rules).
    if claims.exp is not None and at >= claims.exp + slack:
        raise FreshnessError(f"the token expired at {_iso(claims.exp)}")
    if claims.nbf is not None and at + slack < claims.nbf:
        raise FreshnessError(f"the token is not valid before {_iso(claims.nbf)}")
    if claims.iat is not None and claims.iat > at + slack:
        raise FreshnessError(f"the token was issued in the future ({_iso(claims.iat)})")
    if max_age is not None:
        if claims.iat is None:
            raise FreshnessError("the token has no iat, so its age cannot be checked")
        if at - claims.iat > max_age.total_seconds() + slack:
            raise FreshnessError(f"the token was issued at {_iso(claims.iat)}, over {max_age} ago")


def _iso(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return str(timestamp)


def verify_eat(
    token: bytes,
    key: cose.VerificationKey | cose.PrivateKey,
    *,
    expected_nonce: bytes | None = None,
    now: datetime | None = None,
    max_age: timedelta | None = None,
    leeway: timedelta = timedelta(0),
    external_aad: bytes = b"",
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> EatClaims:
    """Verify an EAT and return its claims, or raise an :class:`EvidenceError` subclass.

    Order: structure, signature/MAC (with ``key``, algorithm bound to the key), claim types, nonce
    (``expected_nonce`` must equal one of the token's nonces), then time: ``exp``/``nbf``/``iat``
    against ``now`` and ``iat`` against ``max_age``. ``now`` is a parameter (pure core); without it
    a token carrying ``exp``/``nbf`` or a ``max_age`` request fails closed with FreshnessError.
    """
    msg = _message(token, max_size)
    if isinstance(msg, Sign1Message):
        cose.verify_sign1(msg, key, external_aad=external_aad)
    else:
        cose.verify_mac0(msg, key, external_aad=external_aad)
    claims = _claims(msg, max_size)
    if expected_nonce is not None:
        nonces = claims.nonces()
        if not nonces:
            raise NonceError("the token carries no nonce")
        if not any(hmac.compare_digest(n, expected_nonce) for n in nonces):
            raise NonceError("the token's nonce does not match the expected nonce")
    _check_time(claims, now, max_age, leeway)
    return claims


# --------------------------------------------------------------------------------------------
# Our device profile
# --------------------------------------------------------------------------------------------

_PROFILE_REQUIRED: Final = (
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
    missing = [name for name, attr in _PROFILE_REQUIRED if getattr(claims, attr) is None]
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
