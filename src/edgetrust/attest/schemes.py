"""Evidence schemes, chosen by media type from an explicit registry (as Veraison does).

=================================================================  =========================
media type                                                         scheme
=================================================================  =========================
``application/eat+cwt; eat_profile="tag:edgetrust.dev,2026:device-v1"``  our device EAT
``application/eat+cwt``                                            any EAT / CWT (RFC 9711)
``application/psa-attestation-token``                              PSA, RFC 9783
``application/psa-attestation-token; profile="PSA_IOT_PROFILE_1"``  PSA IoT profile 1 (TF-M)
=================================================================  =========================

Media types are compared on type/subtype (case-insensitive) and parameters (quoted or not). A
media type not in the registry is an :class:`~edgetrust.errors.UnsupportedSchemeError`.
:func:`detect_scheme` picks a scheme for a token given without a media type, from its COSE tag and
claims (profile, claim key ranges); it never verifies anything.

Every scheme offers ``decode(token) -> DecodedToken`` and ``verify(token, key, ...) ->
VerifiedToken``; both carry the typed claims and a JSON view with the registered claim names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Generic, Protocol, TypeAlias, TypeVar

from edgetrust.attest import cbor, cose, eat, psa
from edgetrust.attest.cose import Mac0Message, Sign1Message
from edgetrust.errors import ClaimError, EvidenceError, FreshnessError, UnsupportedSchemeError

__all__ = [
    "DEVICE_EAT_MEDIA_TYPE",
    "EAT_MEDIA_TYPE",
    "PSA_MEDIA_TYPE",
    "PSA_PROFILE1_MEDIA_TYPE",
    "SCHEMES",
    "DecodedToken",
    "EvidenceScheme",
    "VerifiedToken",
    "decode_token",
    "detect_scheme",
    "parse_media_type",
    "scheme_for",
    "verify_token",
]

DEVICE_EAT_MEDIA_TYPE: Final = f'application/eat+cwt; eat_profile="{eat.DEVICE_PROFILE}"'
EAT_MEDIA_TYPE: Final = "application/eat+cwt"
PSA_MEDIA_TYPE: Final = "application/psa-attestation-token"
PSA_PROFILE1_MEDIA_TYPE: Final = (
    f'application/psa-attestation-token; profile="{psa.PSA_IOT_PROFILE_1}"'
)

Claims = eat.EatClaims | psa.PsaClaims
Message: TypeAlias = Sign1Message | Mac0Message


@dataclass(frozen=True, slots=True, kw_only=True)
class _TokenView:
    """What a scheme says about a token: its scheme, typed claims and their JSON view."""

    scheme: str
    media_type: str
    profile: str | None
    message: Message
    typed_claims: Claims
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedToken(_TokenView):
    """A token decoded but NOT verified (for ``evidence show``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedToken(_TokenView):
    """A token whose signature/MAC, claims, nonce and freshness checks all passed."""


class EvidenceScheme(Protocol):
    """One evidence format: how to decode and verify it."""

    @property
    def name(self) -> str: ...

    @property
    def media_type(self) -> str: ...

    def decode(self, token: bytes) -> DecodedToken: ...

    def verify(
        self,
        token: bytes,
        key: cose.VerificationKey | cose.PrivateKey,
        *,
        expected_nonce: bytes | None = None,
        now: datetime | None = None,
        max_age: timedelta | None = None,
    ) -> VerifiedToken: ...


C = TypeVar("C", eat.EatClaims, psa.PsaClaims)
C_co = TypeVar("C_co", eat.EatClaims, psa.PsaClaims, covariant=True)
V = TypeVar("V", bound=_TokenView)


class _Verifier(Protocol[C_co]):
    """Verifies a token of one format: its COSE message and its claims, or raises."""

    def __call__(
        self,
        token: bytes,
        key: cose.VerificationKey | cose.PrivateKey,
        *,
        expected_nonce: bytes | None,
        now: datetime | None,
        max_age: timedelta | None,
    ) -> tuple[Message, C_co]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scheme(Generic[C]):
    """A registered scheme: one token format (``decoder`` / ``verifier``), the scheme's own claim
    rules (``check``, which returns the claims or raises) and where its profile is read."""

    name: str
    media_type: str
    decoder: Callable[[bytes], tuple[Message, C]]
    verifier: _Verifier[C]
    check: Callable[[C], object]
    profile_of: Callable[[C], str | None]

    def decode(self, token: bytes) -> DecodedToken:
        msg, claims = self.decoder(token)
        self.check(claims)
        return self._view(DecodedToken, msg, claims)

    def verify(
        self,
        token: bytes,
        key: cose.VerificationKey | cose.PrivateKey,
        *,
        expected_nonce: bytes | None = None,
        now: datetime | None = None,
        max_age: timedelta | None = None,
    ) -> VerifiedToken:
        msg, claims = self.verifier(
            token, key, expected_nonce=expected_nonce, now=now, max_age=max_age
        )
        self.check(claims)
        return self._view(VerifiedToken, msg, claims)

    def _view(self, kind: type[V], msg: Message, claims: C) -> V:
        return kind(
            scheme=self.name,
            media_type=self.media_type,
            profile=self.profile_of(claims),
            message=msg,
            typed_claims=claims,
            claims=claims.to_json(),
        )


# ---- the formats: EAT (RFC 9711) and PSA (RFC 9783) --------------------------------------------


def _eat_verifier(*, signed_only: bool) -> _Verifier[eat.EatClaims]:
    """EAT verification; with ``signed_only`` a COSE_Mac0 token is refused before any check."""

    def verify(
        token: bytes,
        key: cose.VerificationKey | cose.PrivateKey,
        *,
        expected_nonce: bytes | None,
        now: datetime | None,
        max_age: timedelta | None,
    ) -> tuple[Message, eat.EatClaims]:
        msg, _ = eat.decode_eat(token)
        if signed_only and isinstance(msg, Mac0Message):
            raise ClaimError(f"the {eat.DEVICE_PROFILE} profile needs a signed (Sign1) token")
        claims = eat.verify_eat(token, key, expected_nonce=expected_nonce, now=now, max_age=max_age)
        return msg, claims

    return verify


def _eat_profile(claims: eat.EatClaims) -> str | None:
    profile = claims.eat_profile
    return profile.hex() if isinstance(profile, bytes) else profile


def _any_eat(claims: eat.EatClaims) -> object:
    return claims


def _verify_psa(
    token: bytes,
    key: cose.VerificationKey | cose.PrivateKey,
    *,
    expected_nonce: bytes | None,
    now: datetime | None,
    max_age: timedelta | None,
) -> tuple[Message, psa.PsaClaims]:
    # PSA tokens have no time claims: freshness is the nonce's job. A max_age request cannot be
    # honoured, so it fails closed rather than being ignored; `now` alone has nothing to check.
    if max_age is not None:
        raise FreshnessError("PSA tokens carry no iat; use a nonce for freshness")
    msg, _ = psa.decode_psa(token)
    return msg, psa.verify_psa(token, key, expected_nonce=expected_nonce)


def _psa_variant(variant: psa.PsaVariant) -> Callable[[psa.PsaClaims], object]:
    def check(claims: psa.PsaClaims) -> object:
        if claims.variant is not variant:
            raise ClaimError(f"the token is a {claims.variant} PSA token, not {variant}")
        return claims

    return check


def _psa_profile(claims: psa.PsaClaims) -> str | None:
    return claims.profile


DEVICE_EAT: Final = _Scheme(
    name="edgetrust-device-eat",
    media_type=DEVICE_EAT_MEDIA_TYPE,
    decoder=eat.decode_eat,
    verifier=_eat_verifier(signed_only=True),
    check=eat.check_device_profile,
    profile_of=_eat_profile,
)
GENERIC_EAT: Final = _Scheme(
    name="eat",
    media_type=EAT_MEDIA_TYPE,
    decoder=eat.decode_eat,
    verifier=_eat_verifier(signed_only=False),
    check=_any_eat,
    profile_of=_eat_profile,
)
PSA_RFC9783: Final = _Scheme(
    name="psa",
    media_type=PSA_MEDIA_TYPE,
    decoder=psa.decode_psa,
    verifier=_verify_psa,
    check=_psa_variant(psa.PsaVariant.RFC9783),
    profile_of=_psa_profile,
)
PSA_PROFILE1: Final = _Scheme(
    name="psa-iot-profile-1",
    media_type=PSA_PROFILE1_MEDIA_TYPE,
    decoder=psa.decode_psa,
    verifier=_verify_psa,
    check=_psa_variant(psa.PsaVariant.PROFILE1),
    profile_of=_psa_profile,
)


def parse_media_type(media_type: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``type/subtype`` (lowercase) and its sorted parameters, quotes removed."""
    if not isinstance(media_type, str) or "/" not in media_type:
        raise UnsupportedSchemeError(f"not a media type: {media_type!r}")
    head, _, rest = media_type.partition(";")
    params: list[tuple[str, str]] = []
    # Parameter values may be quoted strings containing ';' (RFC 9110 section 5.6.6).
    buf, in_quotes, parts = "", False, []
    for ch in rest:
        if ch == '"':
            in_quotes = not in_quotes
        if ch == ";" and not in_quotes:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    for part in parts:
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        if not eq or not name.strip():
            raise UnsupportedSchemeError(f"malformed media type parameter {part.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params.append((name.strip().lower(), value))
    return head.strip().lower(), tuple(sorted(params))


#: The registry: normalised media type -> scheme.
SCHEMES: Final[Mapping[tuple[str, tuple[tuple[str, str], ...]], EvidenceScheme]] = {
    parse_media_type(s.media_type): s for s in (DEVICE_EAT, GENERIC_EAT, PSA_RFC9783, PSA_PROFILE1)
}


def scheme_for(media_type: str) -> EvidenceScheme:
    """The scheme registered for ``media_type``; :class:`UnsupportedSchemeError` if none."""
    scheme = SCHEMES.get(parse_media_type(media_type))
    if scheme is None:
        known = ", ".join(s.media_type for s in SCHEMES.values())
        raise UnsupportedSchemeError(
            f"no evidence scheme for media type {media_type!r}", hint=f"known: {known}"
        )
    return scheme


def detect_scheme(token: bytes) -> EvidenceScheme:
    """Pick a scheme from the token itself (COSE tag and claims), without verifying it."""
    value = cbor.loads(token)
    inner = value
    while isinstance(inner, cbor.Tag) and inner.tag == eat.CWT_TAG:
        inner = inner.value
    tag = inner.tag if isinstance(inner, cbor.Tag) else None
    if tag not in (None, cose.COSE_SIGN1_TAG, cose.COSE_MAC0_TAG):
        raise UnsupportedSchemeError(f"not a COSE_Sign1/COSE_Mac0 token (tag {tag})")
    body = inner.value if isinstance(inner, cbor.Tag) else inner
    if not cbor.is_array(body) or len(body) != 4 or not isinstance(body[2], bytes):
        raise UnsupportedSchemeError("not a COSE_Sign1/COSE_Mac0 token with a payload")
    try:
        claims = cbor.loads(body[2], expect=dict)
    except EvidenceError as e:
        raise UnsupportedSchemeError(f"the payload is not a claims-set: {e}") from e
    profile = claims.get(eat.Claim.EAT_PROFILE)
    keys = {k for k in claims if isinstance(k, int) and not isinstance(k, bool)}
    if any(-75010 <= k <= -75000 for k in keys):
        return PSA_PROFILE1
    if profile in (psa.PSA_PROFILE_TFM, psa.PSA_PROFILE_2_0_0) or keys & {
        int(k) for k in psa.PsaClaim if k >= psa.PsaClaim.CLIENT_ID
    }:
        return PSA_RFC9783
    if profile == eat.DEVICE_PROFILE:
        return DEVICE_EAT
    return GENERIC_EAT


def _pick(token: bytes, media_type: str | None) -> EvidenceScheme:
    return detect_scheme(token) if media_type is None else scheme_for(media_type)


def decode_token(token: bytes, *, media_type: str | None = None) -> DecodedToken:
    """Decode (not verify) a token with the scheme of ``media_type`` (detected when None)."""
    return _pick(token, media_type).decode(token)


def verify_token(
    token: bytes,
    key: cose.VerificationKey | cose.PrivateKey,
    *,
    media_type: str | None = None,
    expected_nonce: bytes | None = None,
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> VerifiedToken:
    """Verify a token with the scheme of ``media_type`` (detected when None); raise on failure."""
    return _pick(token, media_type).verify(
        token, key, expected_nonce=expected_nonce, now=now, max_age=max_age
    )
