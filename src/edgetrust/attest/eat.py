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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, Final, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec

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
        return _measurement(value)

    @classmethod
    def _checked(cls, value: object) -> Measurement:
        # every rule with its own message; _measurement's fast path accepts a subset of this
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
        measurement = _MeasurementDraft(name, alg, digest, version, svn, layer)
        _set_class(measurement, "__class__", Measurement)
        return measurement  # type: ignore[no-any-return]


_MEASUREMENT_FIELDS: Final = frozenset({1, 2, 3, 4, 5, 6})


def _measurement(m: Any) -> Measurement:
    """One measurement of a report (validated), the hot path of verify_eat.

    The common shape (a dict with known fields, every value well typed) is checked inline and
    built through the draft; anything else goes to Measurement._checked, which applies the same
    rules one by one and raises the precise ClaimError.
    """
    if _is_plain_measurement(m):
        get = m.get
        measurement = _MeasurementDraft(get(1), get(2), get(3), get(4), get(5), get(6))
        _set_class(measurement, "__class__", Measurement)
        return measurement  # type: ignore[no-any-return]
    return Measurement._checked(m)


def _is_plain_measurement(m: Any) -> bool:
    """True for a measurement map of the common shape that Measurement._checked accepts as is:
    a dict with known fields only, every value of its exact type and size."""
    return _plain_report((m,))


def _plain_report(report: Sequence[Any]) -> bool:
    """True if every measurement of ``report`` is plain (see _is_plain_measurement)."""
    try:
        for m in report:
            if type(m) is not dict:
                return False
            name, alg, digest = m[1], m[2], m[3]  # KeyError: not plain
            if (
                type(name) is not str
                or not name
                or type(alg) is not str
                or type(digest) is not bytes
                or len(digest) != DIGEST_SIZES[alg]  # KeyError: not plain
            ):
                return False
            more = len(m) - 3  # (with exactly three fields, they are 1, 2 and 3)
            if more:
                get = m.get
                version, svn, layer = get(4), get(5), get(6)
                if (
                    # any other field (or a null one) makes the count differ: not plain
                    (version is not None) + (svn is not None) + (layer is not None) != more
                    or (version is not None and type(version) is not str)
                    or (svn is not None and (type(svn) is not int or svn < 0))
                    or (layer is not None and (type(layer) is not int or layer < 0))
                ):
                    return False
    except KeyError:
        return False
    return True


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


# ---- validated construction ------------------------------------------------------------------
#
# A frozen dataclass's __init__ writes every field through object.__setattr__, which dominates
# building the claims of a token. When the decoder has validated every value it builds through a
# "draft": a plain, mutable dataclass with the same fields and the same __slots__, whose generated
# __init__ uses ordinary attribute stores; the draft then becomes an instance of the frozen class
# by __class__ assignment, which Python allows between classes with the same slot layout (tried
# once below, at import). The result is an ordinary, frozen instance of the real class.

_set_class: Final = object.__setattr__


def _draft_of(cls: type) -> Any:
    """The mutable twin of the frozen slotted dataclass ``cls``: the same fields, in order, each
    defaulting to None (positional or keyword; the caller passes every field without one)."""
    names = [f.name for f in dataclasses.fields(cls)]
    draft = dataclasses.make_dataclass(
        f"_{cls.__name__}Draft",
        [(name, Any, dataclasses.field(default=None)) for name in names],
        slots=True,
    )
    if draft.__slots__ != cls.__slots__:  # type: ignore[attr-defined]
        raise TypeError(f"the draft of {cls.__name__} does not have its slots")  # pragma: no cover
    _set_class(draft(*names), "__class__", cls)  # TypeError here if the layouts differ
    return draft


_VersionDraft: Final = _draft_of(Version)
_MeasurementDraft: Final = _draft_of(Measurement)
_EatClaimsDraft: Final = _draft_of(EatClaims)
# the names of EatClaims' fields, in order (the positions of the draft's arguments)
_EAT_FIELDS: Final = [f.name for f in dataclasses.fields(EatClaims)]


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
    built = _VersionDraft(version, scheme)
    _set_class(built, "__class__", Version)
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


def _measurements(
    value: object, profile: object, _depth: int = 0
) -> tuple[Measurement | TypedContent, ...] | _PendingMeasurements:
    if profile != DEVICE_PROFILE:
        return _typed_contents(value, Claim.MEASUREMENTS)
    if not isinstance(value, _ARRAY_TYPES) or not value:
        raise ClaimError("claim measurements must be a non-empty array")
    out: list[Any] = []  # validated measurement maps (or, off the fast path, Measurements)
    for entry in value:
        if (
            not isinstance(entry, _ARRAY_TYPES)
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
        if _plain_report(report):
            out += report
        else:
            out += [m if _is_plain_measurement(m) else Measurement._checked(m) for m in report]
    return _PendingMeasurements(out)


_ARRAY_TYPES: Final = (list, tuple)


class _PendingMeasurements(tuple[Any, ...]):
    """Validated measurements of the device profile: maps that passed _is_plain_measurement (or,
    off that path, Measurements already built). The Measurement objects are built on the first
    read of ``EatClaims.measurements`` (see _ResolvingSlot)."""

    __slots__ = ()

    def resolve(self) -> tuple[Measurement, ...]:
        return tuple(_measurement(m) if type(m) is not Measurement else m for m in self)


def _nonce(value: object) -> bytes | tuple[bytes, ...]:
    # nonce-label => nonce-type / [ 2* nonce-type ]
    if isinstance(value, bytes):
        return _bytes(value, Claim.EAT_NONCE, NONCE_MIN, NONCE_MAX)
    if cbor.is_array(value) and len(value) >= 2:  # type: ignore[arg-type]
        return tuple(_bytes(v, Claim.EAT_NONCE, NONCE_MIN, NONCE_MAX) for v in value)  # type: ignore[attr-defined]
    raise ClaimError("claim eat_nonce must be a byte string or an array of two or more")


def _cnf(
    value: object, _profile: object = None, _depth: int = 0
) -> tuple[PublicKey | _PendingKey | None, bytes | None]:
    # RFC 8747 section 3: exactly one confirmation method.
    if not cbor.is_map(value) or len(value) != 1:  # type: ignore[arg-type]
        raise ClaimError("claim cnf must be a map with exactly one confirmation method")
    ((method, content),) = value.items()  # type: ignore[attr-defined]
    if method == 1:
        pending = _pending_ec2_key(content)
        if pending is not None:
            return pending, None
        # anything but a plain uncompressed EC2 key: the full COSE_Key decoder, at once
        key = decode_cose_key(content, error=ClaimError)
        if isinstance(key, cose.SymmetricKey):
            raise ClaimError("claim cnf: a symmetric COSE_Key cannot confirm a TLS key")
        return key, None  # type: ignore[return-value]
    if method == 3:
        return None, _bytes(content, Claim.CNF)
    raise ClaimError(f"claim cnf: unsupported confirmation method {method!r}")


# ---- cnf keys: the structure checked at once, the point when the key is first read -----------
#
# A cnf COSE_Key of the common form, {1: 2, -1: crv, -2: x, -3: y} with uncompressed coordinates
# of the curve's size on P-256/384/521, passes _pending_ec2_key's structure checks and becomes a
# _PendingKey. verify_eat returns it unbuilt: building the cryptography key object (which is where
# the point is validated: coordinates in range and on the curve, ~6 us) happens on the first read
# of EatClaims.cnf_key, and an invalid point raises there the same ClaimError that decode_cose_key
# raises. decode_claims and decode_eat build it at once (see _build_deferred), so appraisal, the
# CLI and the verifier service meet that error while decoding. Every other form of cnf goes
# through keys.decode_cose_key at once, with its own checks and messages.


class _PendingKey(tuple[ec.EllipticCurve, bytes]):
    """An EC2 public key whose structure was checked, not yet built (nor its point validated):
    ``(curve, 04 || x || y)``."""

    __slots__ = ()

    def resolve(self) -> PublicKey:
        curve, point = self
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError as e:  # as keys.decode_cose_key words it
            raise ClaimError(f"invalid EC2 key: {e}") from e


# COSE crv -> (curve, coordinate size)
_EC2_CURVES: Final[dict[int, tuple[ec.EllipticCurve, int]]] = {
    1: (ec.SECP256R1(), 32),
    2: (ec.SECP384R1(), 48),
    3: (ec.SECP521R1(), 66),
}


def _pending_ec2_key(content: object) -> _PendingKey | None:
    """The key if ``content`` is exactly an uncompressed EC2 COSE_Key of a supported curve."""
    if type(content) is not dict or len(content) != 4:
        return None
    try:  # four entries, all four labels: exactly the labels {1, -1, -2, -3}
        kty, crv, x, y = content[1], content[-1], content[-2], content[-3]
    except KeyError:
        return None
    if type(kty) is not int or kty != 2 or type(crv) is not int:
        return None
    curve = _EC2_CURVES.get(crv)
    if curve is None or type(x) is not bytes or type(y) is not bytes:
        return None
    if len(x) != curve[1] or len(y) != curve[1]:
        return None  # decode_cose_key rejects it, with its message
    return _PendingKey((curve[0], b"\x04" + x + y))


class _ResolvingSlot:
    """A field of EatClaims whose slot may hold a pending value (validated, not yet built): the
    value is built on first read and stored in the slot."""

    __slots__ = ("_pending", "_slot")

    def __init__(self, slot: Any, pending: Any) -> None:
        self._slot = slot
        self._pending = pending

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value: Any = self._slot.__get__(obj, owner)
        if type(value) is self._pending:
            value = value.resolve()
            self._slot.__set__(obj, value)
        return value

    def __set__(self, obj: object, value: object) -> None:
        self._slot.__set__(obj, value)

    def __delete__(self, obj: object) -> None:
        self._slot.__delete__(obj)


# EatClaims.cnf_key and .measurements read through _ResolvingSlot; the dataclass __init__, eq,
# repr, replace and pickling all go through it, so no pending value is ever seen outside this
# module. (The draft's __init__ writes the raw slots.)
EatClaims.cnf_key = _ResolvingSlot(EatClaims.__dict__["cnf_key"], _PendingKey)  # type: ignore[assignment,misc]
EatClaims.measurements = _ResolvingSlot(  # type: ignore[assignment,misc]
    EatClaims.__dict__["measurements"], _PendingMeasurements
)


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


# --------------------------------------------------------------------------------------------
# Decoding and encoding claims
# --------------------------------------------------------------------------------------------


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
    Claim.CNF: ("cnf", _cnf),
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


# --------------------------------------------------------------------------------------------
# Decoding and encoding claims
# --------------------------------------------------------------------------------------------


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
    # every value was validated above: build through the draft (see _draft_of)
    out = _EatClaimsDraft(*values)
    _set_class(out, "__class__", EatClaims)
    return out  # type: ignore[no-any-return]


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

    The same rules as the general loop of _decode_claims, for one shape: exactly the claims of
    _PROFILE_KEYS, in that order, with integer keys, and every value of the exact type the
    device makes (an integer iat, a single nonce, a one-element swversion, ...). Anything else,
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
    status = _DEBUG_STATUS.get(dbgstat)
    if status is None:
        return None
    version = _VersionDraft(swversion[0], None)
    _set_class(version, "__class__", Version)
    pending = _pending_ec2_key(cnf[1]) if type(cnf) is dict and len(cnf) == 1 and 1 in cnf else None
    cnf_key, cnf_kid = (pending, None) if pending is not None else _cnf(cnf)
    measurements = _measurements(meas, profile)
    # positional, in _FIELD_ORDER (keywords cost twice as much)
    out = _EatClaimsDraft(
        None, None, None, None, None, iat, None, cnf_key, cnf_kid, nonce, ueid, None, oemid,
        hwmodel, None, None, oemboot, status, None, profile, None, None, None, None, swname,
        version, None, measurements, None, None, {},
    )  # fmt: skip
    _set_class(out, "__class__", EatClaims)
    return out  # type: ignore[no-any-return]


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


_CWT_TAGS: Final = (CWT_TAG,)


def _message(token: bytes, max_size: int) -> Sign1Message | Mac0Message:
    # tagged: Sign1 (18) or Mac0 (17); untagged: read as a Sign1
    msg = cose.decode_message(token, outer_tags=_CWT_TAGS, untagged_as="sign1", max_size=max_size)
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

    Unlike :func:`verify_eat`, this builds the claims' derived objects (the ``cnf`` key, with
    the validation of its point, and the measurements) at once, so that its callers (appraisal,
    the CLI, the verifier service) meet every claim error here, in their handling of bad
    evidence.
    """
    msg = _message(token, max_size)
    return msg, _claims(msg, max_size)


def _build_deferred(claims: EatClaims) -> None:
    for name in _DEFERRED_FIELDS:
        getattr(claims, name)  # reading a deferred field builds it (see _ResolvingSlot)
    for sub in (claims.submods or {}).values():
        if isinstance(sub, EatClaims):
            _build_deferred(sub)


_DEFERRED_FIELDS: Final = ("cnf_key", "measurements")


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

    Every claim is type-checked here, ``cnf`` included, but two derived objects are built on first
    read: the Measurement objects of the device profile (from maps already validated here) and
    the cryptography key of a ``cnf`` EC2 COSE_Key, whose point (on the curve, coordinates in
    range) is validated when it is built: reading :attr:`EatClaims.cnf_key` of a token whose
    point is invalid raises the :class:`ClaimError` that :func:`decode_claims` raises at once.
    """
    msg = cose.decode_message(
        token, outer_tags=_CWT_TAGS, untagged_as="sign1", max_size=max_size
    )  # as _message
    payload = msg.payload
    if payload is None:
        raise ClaimError("the EAT has a detached payload")
    if type(msg) is Sign1Message:
        cose.verify_sign1(msg, key, external_aad=external_aad)
    else:
        cose.verify_mac0(msg, key, external_aad=external_aad)  # type: ignore[arg-type]
    claims = _decode_claims(cbor.loads(payload, max_size=max_size, expect=dict), 0)
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
