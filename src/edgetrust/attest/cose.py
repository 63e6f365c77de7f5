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
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
)

from edgetrust.attest import cbor
from edgetrust.errors import AlgorithmError, KeyFileError, MalformedError, SignatureError

__all__ = [
    "COSE_MAC0_TAG",
    "COSE_SIGN1_TAG",
    "Algorithm",
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

COSE_SIGN1_TAG: Final = 18
COSE_MAC0_TAG: Final = 17

#: Shortest HMAC key accepted, in bytes.
MIN_HMAC_KEY_BYTES: Final = 16


class Algorithm(IntEnum):
    """COSE algorithm identifiers supported here (IANA COSE Algorithms registry)."""

    ES256 = -7
    ES384 = -35
    ES512 = -36
    EdDSA = -8
    HMAC_256_64 = 4
    HMAC_256_256 = 5
    HMAC_384_384 = 6
    HMAC_512_512 = 7


class HeaderLabel(IntEnum):
    """Common COSE header parameters (RFC 9052 section 3.1)."""

    ALG = 1
    CRIT = 2
    CONTENT_TYPE = 3
    KID = 4
    IV = 5
    PARTIAL_IV = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class SymmetricKey:
    """A secret key for the HMAC algorithms (never printed)."""

    secret: bytes = field(repr=False)
    kid: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_HMAC_KEY_BYTES:
            raise KeyFileError(f"an HMAC key must be at least {MIN_HMAC_KEY_BYTES} bytes")


PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
PrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
VerificationKey: TypeAlias = PublicKey | SymmetricKey
SigningKey: TypeAlias = PrivateKey | SymmetricKey
Header: TypeAlias = Mapping[int | str, Any]

# alg -> (curve name, hash, coordinate size in bytes)
_ECDSA: Final[dict[Algorithm, tuple[str, type[hashes.HashAlgorithm], int]]] = {
    Algorithm.ES256: ("secp256r1", hashes.SHA256, 32),
    Algorithm.ES384: ("secp384r1", hashes.SHA384, 48),
    Algorithm.ES512: ("secp521r1", hashes.SHA512, 66),
}
# alg -> (hash, tag length in bytes)
_HMAC: Final[dict[Algorithm, tuple[str, int]]] = {
    Algorithm.HMAC_256_64: ("sha256", 8),
    Algorithm.HMAC_256_256: ("sha256", 32),
    Algorithm.HMAC_384_384: ("sha384", 48),
    Algorithm.HMAC_512_512: ("sha512", 64),
}
_CURVE_ALG: Final = {"secp256r1": Algorithm.ES256, "secp384r1": Algorithm.ES384}
_CURVE_ALG_ALL: Final = {**_CURVE_ALG, "secp521r1": Algorithm.ES512}
# Header parameters this module processes: the only ones `crit` may name.
_UNDERSTOOD: Final = frozenset(int(label) for label in HeaderLabel)
# alg value -> Algorithm (a dict lookup is ~10x cheaper than the enum call on the verify path)
_ALGORITHMS: Final[dict[int, Algorithm]] = {a.value: a for a in Algorithm}
# alg -> the (stateless) cryptography signature algorithm object, built once
_ECDSA_SIGNATURE: Final = {alg: ec.ECDSA(hash_cls()) for alg, (_, hash_cls, _) in _ECDSA.items()}
_ALG_LABEL: Final = int(HeaderLabel.ALG)
# decoded CBOR containers (see cbor.is_array / cbor.is_map), for inline checks
_ARRAY_TYPES: Final = (list, tuple)
_MAP_TYPES: Final = (dict, cbor.FrozenMap)


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


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
    alg = _ALGORITHMS.get(raw)
    if alg is None:
        raise AlgorithmError(f"unknown or unsupported algorithm {raw}")
    return alg


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


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


def _unwrap(
    value: object, *, expected_tag: int, name: str, require_tag: bool, outer_tags: tuple[int, ...]
) -> tuple[Any, bool]:
    while isinstance(value, cbor.Tag) and value.tag in outer_tags:
        value = value.value
    if isinstance(value, cbor.Tag):
        if value.tag != expected_tag:
            raise MalformedError(f"expected {name} (tag {expected_tag}), got tag {value.tag}")
        return value.value, True
    if require_tag:
        raise MalformedError(f"expected a tagged {name} (tag {expected_tag})")
    return value, False


def _fields(value: Any, name: str) -> tuple[bytes, Header, Header, bytes | None, bytes]:
    if not isinstance(value, _ARRAY_TYPES) or len(value) != 4:
        raise MalformedError(f"a {name} must be an array of four elements")
    protected_bytes: Any = value[0]
    unprotected: Any = value[1]
    payload: Any = value[2]
    last: Any = value[3]
    protected, unprotected_map = _headers(protected_bytes, unprotected)
    if payload is not None and not isinstance(payload, bytes):
        raise MalformedError(f"the {name} payload must be a byte string or nil")
    if not isinstance(last, bytes):
        raise MalformedError(f"the {name} signature/tag must be a byte string")
    return protected_bytes, protected, unprotected_map, payload, last


def decode_sign1(
    data: bytes,
    *,
    require_tag: bool = False,
    outer_tags: tuple[int, ...] = (),
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> Sign1Message:
    """Decode a COSE_Sign1 (tagged 18 or, unless ``require_tag``, untagged) without verifying it.

    ``outer_tags`` are tags allowed around the COSE tag (e.g. 61, the CWT tag of RFC 8392).
    """
    if type(data) is bytes and len(data) <= max_size:
        msg = _sign1_envelope(data)
        if msg is not None:
            return msg
    value = cbor.loads(data, max_size=max_size)
    return _sign1_from_value(value, require_tag=require_tag, outer_tags=outer_tags)


_EMPTY_HEADER: Final[Header] = cbor.FrozenMap()


def _sign1_envelope(data: bytes) -> Sign1Message | None:
    """A tagged COSE_Sign1 of the common form, read without the CBOR decoder; else None.

    Taken only when ``data`` is exactly: tag 18 (``d2``), an array of four (``84``), a protected
    header of fewer than 24 bytes already decoded and checked once (in _PROTECTED_CACHE), an
    empty unprotected map (``a0``), the payload and the signature as byte strings whose lengths
    are in their shortest form, and nothing after the signature. Such bytes are one well-formed,
    definite-length data item that the strict decoder accepts, with the same fields (tested).
    Anything else (a CWT tag, untagged, an unprotected header, other length forms, a new
    protected header...) returns None and goes to the strict decoder.
    """
    try:
        if data[0] != 0xD2 or data[1] != 0x84:
            return None
        end = 3 + data[2] - 0x40  # protected: a byte string of length < 24, head 0x40 + length
        if not 3 <= end < 27 or data[end] != 0xA0:
            return None
        protected_bytes = data[3:end]
        protected = _PROTECTED_CACHE.get(protected_bytes)
        if protected is None:
            return None
        payload, end = _byte_string_at(data, end + 1)
        signature, end = _byte_string_at(data, end)
    except (IndexError, TypeError):  # too short; TypeError: a byte string head was not found
        return None
    if end != len(data):
        return None
    msg = object.__new__(Sign1Message)
    _SIGN1_PROTECTED_BYTES(msg, protected_bytes)
    _SIGN1_PROTECTED(msg, protected)
    _SIGN1_UNPROTECTED(msg, _EMPTY_HEADER)
    _SIGN1_PAYLOAD(msg, payload)
    _SIGN1_SIGNATURE(msg, signature)
    _SIGN1_TAGGED(msg, True)
    return msg


def _byte_string_at(data: bytes, at: int) -> tuple[bytes, int]:
    """The byte string whose head is at ``at`` (shortest-form length) and the offset after it.

    Raises IndexError when ``data`` ends early and TypeError when the head is not that of a byte
    string with a shortest-form length of at most 65535 bytes (see _sign1_envelope).
    """
    head = data[at]
    if 0x40 <= head < 0x58:
        start, length = at + 1, head - 0x40
    elif head == 0x58 and data[at + 1] >= 24:
        start, length = at + 2, data[at + 1]
    elif head == 0x59 and (length := data[at + 1] << 8 | data[at + 2]) >= 256:
        start = at + 3
    else:
        raise TypeError
    end = start + length
    if end > len(data):
        raise IndexError
    return data[start:end], end


def _sign1_from_value(
    value: object, *, require_tag: bool, outer_tags: tuple[int, ...]
) -> Sign1Message:
    inner, tagged = _unwrap(
        value,
        expected_tag=COSE_SIGN1_TAG,
        name="COSE_Sign1",
        require_tag=require_tag,
        outer_tags=outer_tags,
    )
    return _sign1(inner, tagged)


def _sign1(fields: Any, tagged: bool) -> Sign1Message:
    protected: Header | None = None
    if (type(fields) is tuple or type(fields) is list) and len(fields) == 4:
        # the common case, checked inline: an already seen protected header, no unprotected one
        protected_bytes, unprotected, payload, signature = fields
        if (
            type(protected_bytes) is bytes
            and isinstance(unprotected, _MAP_TYPES)
            and not unprotected
            and (payload is None or type(payload) is bytes)
            and type(signature) is bytes
        ):
            protected = _PROTECTED_CACHE.get(protected_bytes)
    if protected is None:  # every other case: each rule with its own message
        protected_bytes, protected, unprotected, payload, signature = _fields(fields, "COSE_Sign1")
    # every field checked by _fields: write the frozen instance through its slots (verify path)
    msg = object.__new__(Sign1Message)
    _SIGN1_PROTECTED_BYTES(msg, protected_bytes)
    _SIGN1_PROTECTED(msg, protected)
    _SIGN1_UNPROTECTED(msg, unprotected)
    _SIGN1_PAYLOAD(msg, payload)
    _SIGN1_SIGNATURE(msg, signature)
    _SIGN1_TAGGED(msg, tagged)
    return msg


def decode_mac0(
    data: bytes,
    *,
    require_tag: bool = False,
    outer_tags: tuple[int, ...] = (),
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> Mac0Message:
    """Decode a COSE_Mac0 (tagged 17 or, unless ``require_tag``, untagged) without verifying it."""
    value = cbor.loads(data, max_size=max_size)
    return _mac0_from_value(value, require_tag=require_tag, outer_tags=outer_tags)


def _mac0_from_value(
    value: object, *, require_tag: bool, outer_tags: tuple[int, ...]
) -> Mac0Message:
    inner, tagged = _unwrap(
        value,
        expected_tag=COSE_MAC0_TAG,
        name="COSE_Mac0",
        require_tag=require_tag,
        outer_tags=outer_tags,
    )
    protected_bytes, protected, unprotected, payload, tag = _fields(inner, "COSE_Mac0")
    return Mac0Message(
        protected_bytes=protected_bytes,
        protected=protected,
        unprotected=unprotected,
        payload=payload,
        tag=tag,
        tagged=tagged,
    )


def decode_message(
    data: bytes,
    *,
    outer_tags: tuple[int, ...] = (),
    untagged_as: Literal["sign1", "mac0"] | None = None,
    max_size: int = cbor.DEFAULT_MAX_SIZE,
) -> Sign1Message | Mac0Message:
    """Decode a COSE_Sign1 or COSE_Mac0, whichever its tag says (one CBOR pass).

    An untagged message is an error unless ``untagged_as`` says what the context expects.
    """
    if type(data) is bytes and len(data) <= max_size:
        msg = _sign1_envelope(data)
        if msg is not None:
            return msg
    inner = cbor.loads(data, max_size=max_size)
    while type(inner) is cbor.Tag and inner.tag in outer_tags:
        inner = inner.value
    if type(inner) is cbor.Tag:
        if inner.tag == COSE_SIGN1_TAG:
            return _sign1(inner.value, True)
        if inner.tag == COSE_MAC0_TAG:
            return _mac0_from_value(inner, require_tag=True, outer_tags=())
        raise MalformedError(f"expected COSE_Sign1 (18) or COSE_Mac0 (17), got tag {inner.tag}")
    if untagged_as == "sign1":
        return _sign1_from_value(inner, require_tag=False, outer_tags=())
    if untagged_as == "mac0":
        return _mac0_from_value(inner, require_tag=False, outer_tags=())
    raise MalformedError("expected a tagged COSE_Sign1 (18) or COSE_Mac0 (17)")


# --------------------------------------------------------------------------------------------
# To-be-signed structures
# --------------------------------------------------------------------------------------------


def _content(payload: bytes | None, detached_payload: bytes | None) -> bytes:
    if payload is not None and detached_payload is not None:
        raise MalformedError("the message has a payload; no detached payload expected")
    if payload is None:
        if detached_payload is None:
            raise MalformedError("the payload is detached and none was supplied")
        return detached_payload
    return payload


def _body_protected(msg: Sign1Message | Mac0Message) -> bytes:
    # RFC 9052 section 4.4 / 6.3: the received bytes, or h'' when there are no protected attributes.
    return msg.protected_bytes if msg.protected else b""


# Sig_structure up to the payload, by body_protected, for an empty external AAD:
# h'84' "Signature1" bstr(body_protected) h'40'. Same bounds as the protected-header cache.
_SIG1_PREFIXES: dict[bytes, bytes] = {}


def sig_structure(
    msg: Sign1Message, *, external_aad: bytes = b"", detached_payload: bytes | None = None
) -> bytes:
    """``Sig_structure`` for a COSE_Sign1 (RFC 9052 section 4.4), with the received header bytes."""
    content = _content(msg.payload, detached_payload)
    body = _body_protected(msg)
    # == cbor.dumps(["Signature1", body_protected, external_aad, content]), written directly
    if not external_aad:
        prefix = _SIG1_PREFIXES.get(body)
        if prefix is None:
            prefix = b"\x84\x6aSignature1" + cbor.encode_bytes(body) + b"\x40"
            if (
                len(body) <= _PROTECTED_CACHE_MAX_BYTES
                and len(_SIG1_PREFIXES) < _PROTECTED_CACHE_MAX_ENTRIES
            ):
                _SIG1_PREFIXES[body] = prefix
        return prefix + cbor.encode_bytes(content)
    return b"".join(
        (
            b"\x84\x6aSignature1",
            cbor.encode_bytes(body),
            cbor.encode_bytes(external_aad),
            cbor.encode_bytes(content),
        )
    )


def mac_structure(
    msg: Mac0Message, *, external_aad: bytes = b"", detached_payload: bytes | None = None
) -> bytes:
    """``MAC_structure`` for a COSE_Mac0 (RFC 9052 section 6.3), with the received header bytes."""
    content = _content(msg.payload, detached_payload)
    return cbor.dumps(["MAC0", _body_protected(msg), external_aad, content])


# --------------------------------------------------------------------------------------------
# Algorithm / key binding
# --------------------------------------------------------------------------------------------


def _public(key: object) -> object:
    if isinstance(
        key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    ):
        return key.public_key()
    return key


# Concrete classes whose instances passed ``isinstance(key, ec.EllipticCurvePublicKey)``
# (cryptography registers its native key classes with the ABCs, and the ABC check is slow): the
# verify path asks ``type(key) in`` this set first. Only grows by classes, so it stays tiny.
_EC_PUBLIC_TYPES: set[type] = set()


def _signature_key(key: object, alg: Algorithm) -> PublicKey:
    """The public key to verify ``alg`` with, or :class:`AlgorithmError` if they do not match."""
    if type(key) in _EC_PUBLIC_TYPES:
        ecdsa = _ECDSA.get(alg)
        if ecdsa is not None and key.curve.name == ecdsa[0]:  # type: ignore[attr-defined]
            return key  # type: ignore[return-value]
    key = _public(key)
    if alg in _HMAC:
        raise AlgorithmError(f"{alg.name} is a MAC algorithm, not a signature algorithm")
    if isinstance(key, SymmetricKey):
        raise AlgorithmError(f"{alg.name} needs a public key, got a symmetric (HMAC) key")
    if alg in _ECDSA:
        curve = _ECDSA[alg][0]
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise AlgorithmError(f"{alg.name} needs an EC key on {curve}, got {_key_kind(key)}")
        if key.curve.name != curve:
            raise AlgorithmError(f"{alg.name} needs an EC key on {curve}, got {key.curve.name}")
        _EC_PUBLIC_TYPES.add(type(key))
        return key
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return key
    raise AlgorithmError(f"{alg.name} needs an Ed25519 or Ed448 key, got {_key_kind(key)}")


def _mac_key(key: object, alg: Algorithm) -> SymmetricKey:
    if alg not in _HMAC:
        raise AlgorithmError(f"{alg.name} is not a MAC algorithm")
    if not isinstance(key, SymmetricKey):
        raise AlgorithmError(f"{alg.name} needs a symmetric (HMAC) key, got {_key_kind(key)}")
    return key


def _key_kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(key, ed448.Ed448PublicKey):
        return "an Ed448 key"
    if isinstance(key, SymmetricKey):
        return "a symmetric key"
    return f"a {type(key).__name__}"


def default_algorithm(key: SigningKey | VerificationKey) -> Algorithm:
    """The one algorithm a key is used with here (HMAC keys default to HMAC 256/256)."""
    key_ = _public(key)
    if isinstance(key_, SymmetricKey):
        return Algorithm.HMAC_256_256
    if isinstance(key_, ec.EllipticCurvePublicKey):
        alg = _CURVE_ALG_ALL.get(key_.curve.name)
        if alg is None:
            raise AlgorithmError(f"no COSE algorithm for EC curve {key_.curve.name}")
        return alg
    if isinstance(key_, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return Algorithm.EdDSA
    raise AlgorithmError(f"unsupported key type {_key_kind(key_)}")


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def _der_signature(raw: bytes, size: int) -> bytes:
    """The DER ``ECDSA-Sig-Value`` of the fixed-width ``r || s`` (``size`` bytes each).

    Equal to ``encode_dss_signature(r, s)`` (tested): each INTEGER minimal, with a leading zero
    byte where its top bit is set; the SEQUENCE length in short form, or 0x81 + one byte (P-521).
    """
    r = raw[:size].lstrip(b"\0")
    s = raw[size:].lstrip(b"\0")
    if not r or r[0] & 0x80:
        r = b"\0" + r
    if not s or s[0] & 0x80:
        s = b"\0" + s
    r_len, s_len = len(r), len(s)
    length = r_len + s_len + 4
    head = (
        bytes((0x30, length, 2, r_len)) if length < 128 else bytes((0x30, 0x81, length, 2, r_len))
    )
    return head + r + bytes((2, s_len)) + s


def _verify_signature(key: PublicKey, alg: Algorithm, signature: bytes, data: bytes) -> None:
    try:
        if type(key) in _EC_PUBLIC_TYPES or isinstance(key, ec.EllipticCurvePublicKey):
            size = _ECDSA[alg][2]
            if len(signature) != 2 * size:
                raise SignatureError(
                    f"{alg.name} signature must be {2 * size} bytes, got {len(signature)}"
                )
            der = _der_signature(signature, size)
            key.verify(der, data, _ECDSA_SIGNATURE[alg])  # type: ignore[call-arg]
        else:
            key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError(f"{alg.name} signature does not verify with the given key") from None


def verify_sign1(
    data_or_msg: bytes | Sign1Message,
    key: VerificationKey | PrivateKey,
    *,
    external_aad: bytes = b"",
    detached_payload: bytes | None = None,
    require_tag: bool = False,
    outer_tags: tuple[int, ...] = (),
) -> Sign1Message:
    """Verify a COSE_Sign1 with ``key``; return the message or raise.

    Raises :class:`MalformedError`/:class:`CBORError` (structure), :class:`AlgorithmError`
    (missing, unknown or key-incompatible algorithm) or :class:`SignatureError`.
    """
    msg = (
        data_or_msg
        if isinstance(data_or_msg, Sign1Message)
        else decode_sign1(data_or_msg, require_tag=require_tag, outer_tags=outer_tags)
    )
    plan = _SIGN1_PLANS.get(msg.protected_bytes)
    payload = msg.payload
    if (
        plan is not None
        and plan[0] is msg.protected
        and type(payload) is bytes
        and not external_aad
        and detached_payload is None
    ):
        # the common case: a cached protected header that names the algorithm (see _plan)
        alg = plan[1]
        to_be_signed = plan[2] + cbor.encode_bytes(payload)
    else:
        alg = msg.alg
        to_be_signed = sig_structure(
            msg, external_aad=external_aad, detached_payload=detached_payload
        )
        _plan(msg, alg)
    public_key = _signature_key(key, alg)
    _verify_signature(public_key, alg, msg.signature, to_be_signed)
    return msg


# protected header bytes -> (the cached decoded header, its algorithm, the Sig_structure prefix
# for an empty external AAD). Kept only for headers in _PROTECTED_CACHE that carry ``alg``
# themselves: then the algorithm depends on those bytes alone (a protected ``alg`` wins, and a
# decoded message cannot also carry it unprotected), and ``plan[0] is msg.protected`` proves the
# message's header is that cached one.
_SIGN1_PLANS: dict[bytes, tuple[Header, Algorithm, bytes]] = {}


def _plan(msg: Sign1Message, alg: Algorithm) -> None:
    protected_bytes = msg.protected_bytes
    if (
        _PROTECTED_CACHE.get(protected_bytes) is msg.protected
        and _ALG_LABEL in msg.protected
        and len(_SIGN1_PLANS) < _PROTECTED_CACHE_MAX_ENTRIES
    ):
        body = protected_bytes if msg.protected else b""
        prefix = b"\x84\x6aSignature1" + cbor.encode_bytes(body) + b"\x40"
        _SIGN1_PLANS[protected_bytes] = (msg.protected, alg, prefix)


def _hmac(key: SymmetricKey, alg: Algorithm, data: bytes) -> bytes:
    digest, length = _HMAC[alg]
    return hmac.new(key.secret, data, digest).digest()[:length]


def verify_mac0(
    data_or_msg: bytes | Mac0Message,
    key: VerificationKey | PrivateKey,
    *,
    external_aad: bytes = b"",
    detached_payload: bytes | None = None,
    require_tag: bool = False,
    outer_tags: tuple[int, ...] = (),
) -> Mac0Message:
    """Verify a COSE_Mac0 with the symmetric ``key``; return the message or raise."""
    msg = (
        data_or_msg
        if isinstance(data_or_msg, Mac0Message)
        else decode_mac0(data_or_msg, require_tag=require_tag, outer_tags=outer_tags)
    )
    alg = msg.alg
    secret = _mac_key(key, alg)
    to_be_maced = mac_structure(msg, external_aad=external_aad, detached_payload=detached_payload)
    if not hmac.compare_digest(_hmac(secret, alg, to_be_maced), msg.tag):
        raise SignatureError(f"{alg.name} tag does not verify with the given key")
    return msg


# --------------------------------------------------------------------------------------------
# Producing
# --------------------------------------------------------------------------------------------


def _encode_headers(
    alg: Algorithm, kid: bytes | None, protected: Header | None, unprotected: Header | None
) -> tuple[bytes, dict[int | str, Any]]:
    protected_map: dict[int | str, Any] = {int(HeaderLabel.ALG): int(alg)}
    protected_map.update(protected or {})
    unprotected_map: dict[int | str, Any] = dict(unprotected or {})
    if kid is not None:
        unprotected_map[int(HeaderLabel.KID)] = kid
    if set(protected_map) & set(unprotected_map):
        raise MalformedError("a header parameter cannot be both protected and unprotected")
    return cbor.dumps(protected_map), unprotected_map


def _as_algorithm(alg: int) -> Algorithm:
    try:
        return Algorithm(alg)
    except ValueError:
        raise AlgorithmError(f"unknown or unsupported algorithm {alg}") from None


def _assemble(tag: int, fields: list[Any], *, tagged: bool) -> bytes:
    return cbor.dumps(cbor.Tag(tag, fields) if tagged else fields)


def sign1(
    payload: bytes,
    key: PrivateKey,
    *,
    alg: Algorithm | None = None,
    kid: bytes | None = None,
    protected: Header | None = None,
    unprotected: Header | None = None,
    external_aad: bytes = b"",
    tagged: bool = True,
) -> bytes:
    """Produce a COSE_Sign1 over ``payload``; ``alg`` defaults to the key's algorithm.

    ``alg`` goes in the protected header, ``kid`` in the unprotected one. ECDSA is deterministic.
    """
    alg = default_algorithm(key) if alg is None else _as_algorithm(alg)
    _signature_key(key, alg)
    protected_bytes, unprotected_map = _encode_headers(alg, kid, protected, unprotected)
    to_be_signed = cbor.dumps(["Signature1", protected_bytes, external_aad, payload])
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _, hash_cls, size = _ECDSA[alg]
        der = key.sign(to_be_signed, ec.ECDSA(hash_cls(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        signature = key.sign(to_be_signed)
    else:
        raise AlgorithmError(f"cannot sign with {_key_kind(key)}")
    fields = [protected_bytes, unprotected_map, payload, signature]
    return _assemble(COSE_SIGN1_TAG, fields, tagged=tagged)


def mac0(
    payload: bytes,
    key: SymmetricKey,
    *,
    alg: Algorithm = Algorithm.HMAC_256_256,
    kid: bytes | None = None,
    protected: Header | None = None,
    unprotected: Header | None = None,
    external_aad: bytes = b"",
    tagged: bool = True,
) -> bytes:
    """Produce a COSE_Mac0 over ``payload`` with an HMAC algorithm (protected ``alg``)."""
    alg = _as_algorithm(alg)
    secret = _mac_key(key, alg)
    protected_bytes, unprotected_map = _encode_headers(alg, kid, protected, unprotected)
    to_be_maced = cbor.dumps(["MAC0", protected_bytes, external_aad, payload])
    tag = _hmac(secret, alg, to_be_maced)
    return _assemble(COSE_MAC0_TAG, [protected_bytes, unprotected_map, payload, tag], tagged=tagged)
