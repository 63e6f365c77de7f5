"""The typed claims-set of an EAT (:class:`EatClaims`) and its encodings: CBOR (the CWT payload,
:func:`encode_claims`) and JSON (:meth:`EatClaims.to_json`, :func:`jsonable`).

Two fields, ``cnf_key`` and ``measurements``, may hold a value that the decoder validated but did
not build yet (a :class:`~edgetrust.attest.eat.cnf._PendingKey`, a
:class:`~edgetrust.attest.eat.measurements._PendingMeasurements`); :class:`_ResolvingSlot` builds
it on first read, so no pending value is ever seen outside this package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final, TypeAlias

from edgetrust.attest import cbor
from edgetrust.attest.cose import PublicKey
from edgetrust.attest.eat.cnf import _PendingKey
from edgetrust.attest.eat.drafts import draft_of
from edgetrust.attest.eat.measurements import Measurement, _PendingMeasurements
from edgetrust.attest.eat.vocabulary import (
    CLAIM_NAMES,
    MEASUREMENT_CONTENT_FORMAT,
    Claim,
    DebugStatus,
)
from edgetrust.attest.keys import encode_cose_key
from edgetrust.errors import ClaimError

__all__ = [
    "EatClaims",
    "Submodule",
    "TypedContent",
    "Version",
    "encode_claims",
    "encode_claims_map",
    "jsonable",
]


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
        claim_name = CLAIM_NAMES.get
        for key, value in encode_claims_map(self).items():
            name = claim_name(key, str(key)) if isinstance(key, int) else key
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


# Built through drafts by the decoders once every value is validated (see
# edgetrust.attest.eat.drafts).
_VersionDraft: Final = draft_of(Version)
_EatClaimsDraft: Final = draft_of(EatClaims)
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
# package. (The draft's __init__ writes the raw slots.)
EatClaims.cnf_key = _ResolvingSlot(EatClaims.__dict__["cnf_key"], _PendingKey)  # type: ignore[assignment,misc]
EatClaims.measurements = _ResolvingSlot(  # type: ignore[assignment,misc]
    EatClaims.__dict__["measurements"], _PendingMeasurements
)


# ---- encoding -------------------------------------------------------------------------------


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
