"""COSE_Sign1 and COSE_Mac0 messages (RFC 9052 sections 4.2 and 6.2) and their header buckets.

The protected header is kept as the exact bytes received (see :mod:`edgetrust.attest.cose`);
:func:`_protected` decodes and checks it once per distinct encoding (:data:`_PROTECTED_CACHE`),
:func:`_headers` checks the two buckets together (labels, ``crit``, no label in both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from edgetrust.attest import cbor
from edgetrust.attest.cose.algorithms import Algorithm, _algorithm_of
from edgetrust.errors import AlgorithmError, MalformedError

__all__ = [
    "COSE_MAC0_TAG",
    "COSE_SIGN1_TAG",
    "Header",
    "HeaderLabel",
    "Mac0Message",
    "Sign1Message",
]

COSE_SIGN1_TAG: Final = 18
COSE_MAC0_TAG: Final = 17

Header: TypeAlias = Mapping[int | str, Any]


class HeaderLabel(IntEnum):
    """Common COSE header parameters (RFC 9052 section 3.1)."""

    ALG = 1
    CRIT = 2
    CONTENT_TYPE = 3
    KID = 4
    IV = 5
    PARTIAL_IV = 6


# Header parameters this package processes: the only ones `crit` may name.
_UNDERSTOOD: Final = frozenset(int(label) for label in HeaderLabel)
_ALG_LABEL: Final = int(HeaderLabel.ALG)
# decoded CBOR containers (see cbor.is_array / cbor.is_map), for inline checks
_ARRAY_TYPES: Final = (list, tuple)
_MAP_TYPES: Final = (dict, cbor.FrozenMap)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sign1Message:
    """A decoded COSE_Sign1. ``protected_bytes`` are the header bytes exactly as received."""

    protected_bytes: bytes
    protected: Header
    unprotected: Header
    payload: bytes | None
    signature: bytes
    tagged: bool

    @property
    def kid(self) -> bytes | None:
        return _kid(self.protected, self.unprotected)

    @property
    def alg(self) -> Algorithm:
        """The signature algorithm (protected, else unprotected); AlgorithmError if none."""
        return _algorithm(self.protected, self.unprotected, allow_unprotected=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mac0Message:
    """A decoded COSE_Mac0. ``protected_bytes`` are the header bytes exactly as received."""

    protected_bytes: bytes
    protected: Header
    unprotected: Header
    payload: bytes | None
    tag: bytes
    tagged: bool

    @property
    def kid(self) -> bytes | None:
        return _kid(self.protected, self.unprotected)

    @property
    def alg(self) -> Algorithm:
        """The MAC algorithm, which must be protected; :class:`AlgorithmError` otherwise."""
        return _algorithm(self.protected, self.unprotected, allow_unprotected=False)


# slot setters of Sign1Message
(
    _SIGN1_PROTECTED_BYTES,
    _SIGN1_PROTECTED,
    _SIGN1_UNPROTECTED,
    _SIGN1_PAYLOAD,
    _SIGN1_SIGNATURE,
    _SIGN1_TAGGED,
) = (
    getattr(Sign1Message, name).__set__
    for name in ("protected_bytes", "protected", "unprotected", "payload", "signature", "tagged")
)


def _kid(protected: Header, unprotected: Header) -> bytes | None:
    kid = protected.get(HeaderLabel.KID, unprotected.get(HeaderLabel.KID))
    return kid if isinstance(kid, bytes) else None


def _algorithm(protected: Header, unprotected: Header, *, allow_unprotected: bool) -> Algorithm:
    raw = protected.get(_ALG_LABEL)
    if raw is None and _ALG_LABEL in unprotected:
        if not allow_unprotected:
            raise AlgorithmError("the MAC algorithm must be in the protected header")
        raw = unprotected[_ALG_LABEL]
    if raw is None:
        raise AlgorithmError("no algorithm ('alg' header parameter) in the message")
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise AlgorithmError(f"unsupported algorithm {raw!r}")
    alg = _algorithm_of(raw)
    if alg is None:
        raise AlgorithmError(f"unknown or unsupported algorithm {raw}")
    return alg


def _check_bucket(bucket: Header) -> None:
    """Checks that involve one bucket only: label types, kid and content type value types."""
    for label in bucket:
        if type(label) is not int and type(label) is not str:
            raise MalformedError(f"header label {label!r} is neither an integer nor text")
    kid = bucket.get(HeaderLabel.KID)
    if kid is not None and type(kid) is not bytes:
        raise MalformedError("'kid' must be a byte string")
    content_type = bucket.get(HeaderLabel.CONTENT_TYPE)
    if content_type is not None and type(content_type) is not int and type(content_type) is not str:
        raise MalformedError("'content type' must be an integer or text")


def _decode_protected(protected_bytes: bytes) -> Header:
    protected: Header = cbor.loads(protected_bytes, expect=dict)
    _check_bucket(protected)
    crit = protected.get(HeaderLabel.CRIT)
    if crit is not None:
        if not cbor.is_array(crit) or not crit:
            raise MalformedError("'crit' must be a non-empty array of labels")
        for label in crit:
            if label not in protected:
                raise MalformedError(f"critical header parameter {label!r} is not protected")
            if label not in _UNDERSTOOD:
                raise MalformedError(f"critical header parameter {label!r} is not understood")
    return MappingProxyType(dict(protected))


# Decoded protected headers by their exact bytes. The same few short encodings (h'A10126' for
# ES256, ...) recur in every token, so they are decoded and checked once; the cached mappings
# are read-only. Bounded: short headers only, and a fixed number of them.
_PROTECTED_CACHE: dict[bytes, Header] = {b"": MappingProxyType({})}
#: ``_PROTECTED_CACHE.get``: the cached decoded header of these bytes, or None.
# (Bound once for the other modules: in CPython 3.11 a method call on an imported name
# compiles to LOAD_ATTR, which builds a bound method on every call, not LOAD_METHOD.)
_cached_protected: Final = _PROTECTED_CACHE.get
_PROTECTED_CACHE_MAX_ENTRIES: Final = 256
_PROTECTED_CACHE_MAX_BYTES: Final = 64


def _protected(protected_bytes: bytes) -> Header:
    protected = _PROTECTED_CACHE.get(protected_bytes)
    if protected is None:
        protected = _decode_protected(protected_bytes)
        if (
            len(protected_bytes) <= _PROTECTED_CACHE_MAX_BYTES
            and len(_PROTECTED_CACHE) < _PROTECTED_CACHE_MAX_ENTRIES
        ):
            _PROTECTED_CACHE[protected_bytes] = protected
    return protected


def _headers(protected_bytes: object, unprotected: Any) -> tuple[Header, Header]:
    if type(protected_bytes) is not bytes:
        raise MalformedError("the protected header must be a byte string")
    if not isinstance(unprotected, _MAP_TYPES):
        raise MalformedError("the unprotected header must be a map")
    protected = _protected(protected_bytes)
    if unprotected:
        _check_bucket(unprotected)
        if HeaderLabel.CRIT in unprotected:
            raise MalformedError("'crit' must be in the protected header")
        both = [label for label in unprotected if label in protected]
        if both:
            raise MalformedError(f"header parameter(s) {sorted(map(str, both))} in both buckets")
    return protected, unprotected
