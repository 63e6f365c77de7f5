"""Who may call the agent: SPIFFE identity, per-device model permissions, revocation.

TLS has already checked that the peer certificate chains to the cluster CA and is within its
validity period at handshake time. Every call then goes through :class:`Authorizer`:

1. the peer certificate's only URI SAN must be ``spiffe://<trust-domain>/device/<ueid-hex>``
   (SPIFFE X509-SVID: exactly one URI SAN);
2. the certificate must still be valid *now* (a connection can outlive its certificate);
3. neither the device (UEID) nor the certificate (serial) may be revoked, and the revocation feed
   must be fresh when one is required (fail closed: a stale feed refuses every call);
4. the device must be permitted to use the model.

:class:`CallTracker` keeps a guard for each call in flight; when a revocation arrives, the guards
of the revoked identity are cut, which ends in-flight unary calls and open streams within the time
the handler needs to notice (a wake-up, not a poll).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from edgetrust.errors import (
    ConfigError,
    ExpiredError,
    MalformedError,
    PermissionDeniedError,
    RevokedError,
    UnavailableError,
)
from edgetrust.offload.feed import RevocationEvent, RevocationKind, normalise_serial_hex

_log = logging.getLogger(__name__)

ALL_MODELS = "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerIdentity:
    """The authenticated caller, from its operational certificate."""

    spiffe_id: str
    trust_domain: str
    ueid_hex: str
    serial_hex: str
    not_after: datetime


def identity_from_certificate(cert: x509.Certificate, *, trust_domain: str) -> PeerIdentity:
    """The device identity of an operational certificate, or PermissionDeniedError."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound as e:
        raise PermissionDeniedError("client certificate has no subjectAltName") from e
    if not isinstance(san, x509.SubjectAlternativeName):  # pragma: no cover - cryptography API
        raise PermissionDeniedError("client certificate has a malformed subjectAltName")
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise PermissionDeniedError(
            f"client certificate must carry exactly one URI SAN (a SPIFFE ID), not {len(uris)}"
        )
    spiffe_id = uris[0]
    prefix = f"spiffe://{trust_domain}/device/"
    if not spiffe_id.startswith(prefix):
        raise PermissionDeniedError(f"{spiffe_id!r} is not a device of trust domain {trust_domain}")
    ueid_hex = spiffe_id.removeprefix(prefix)
    if not ueid_hex or len(ueid_hex) % 2 or not all(c in "0123456789abcdef" for c in ueid_hex):
        raise PermissionDeniedError(f"{spiffe_id!r}: the device id is not lower-case hex")
    return PeerIdentity(
        spiffe_id=spiffe_id,
        trust_domain=trust_domain,
        ueid_hex=ueid_hex,
        serial_hex=normalise_serial_hex(cert.serial_number),
        not_after=cert.not_valid_after_utc,
    )


def identity_from_auth_context(
    auth_context: Mapping[str, Sequence[bytes]], *, trust_domain: str
) -> PeerIdentity:
    """The identity from ``grpc.ServicerContext.auth_context()`` (its ``x509_pem_cert`` entry)."""
    pems = auth_context.get("x509_pem_cert") or []
    if not pems:
        raise PermissionDeniedError("no client certificate on this connection")
    return _identity_from_pem(bytes(pems[0]), trust_domain)


@functools.lru_cache(maxsize=4096)
def _identity_from_pem(pem: bytes, trust_domain: str) -> PeerIdentity:
    """Parsed once per certificate: every call on a connection presents the same PEM.

    Only successful parses are cached (an exception is not); the cache holds values derived from
    certificates that TLS has already verified, so it cannot be poisoned by a caller.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise PermissionDeniedError("the client certificate does not parse") from e
    return identity_from_certificate(cert, trust_domain=trust_domain)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPermissions:
    """Which models a device may use.

    ``devices`` maps a UEID (lower-case hex) to its exact set of models, replacing ``default``
    for that device (so a device can be restricted as well as granted). ``"*"`` means every model.
    """

    default: frozenset[str] = frozenset({ALL_MODELS})
    devices: Mapping[str, frozenset[str]] | None = None

    @classmethod
    def from_mapping(
        cls, *, default: Iterable[str], devices: Mapping[str, Iterable[str]] | None = None
    ) -> ModelPermissions:
        table: dict[str, frozenset[str]] = {}
        for ueid, models in (devices or {}).items():
            key = ueid.lower()
            if not key or not all(c in "0123456789abcdef" for c in key):
                raise ConfigError(f"permissions: {ueid!r} is not a UEID in hex")
            table[key] = frozenset(models)
        return cls(default=frozenset(default), devices=table)

    def models_for(self, ueid_hex: str) -> frozenset[str]:
        if self.devices is not None and ueid_hex in self.devices:
            return self.devices[ueid_hex]
        return self.default

    def permits(self, ueid_hex: str, model: str) -> bool:
        allowed = self.models_for(ueid_hex)
        return ALL_MODELS in allowed or model in allowed


class RevocationSet:
    """Revoked UEIDs and certificate serials, kept current by a follower (a RevocationSink).

    ``require_feed``: when True, calls are refused (UnavailableError) until the feed has caught up
    once, and whenever it has been silent for more than ``max_staleness_s``.
    """

    def __init__(
        self,
        *,
        require_feed: bool,
        max_staleness_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, str] = {}
        self._serials: dict[str, str] = {}
        self._last_seq = 0
        self._head_seq = 0
        self._heard: float | None = None
        self._require = require_feed
        self._max_stale = max_staleness_s
        self._monotonic = monotonic
        self._listeners: list[Callable[[RevocationEvent], None]] = []

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    @property
    def head_seq(self) -> int:
        with self._lock:
            return self._head_seq

    def subscribe(self, listener: Callable[[RevocationEvent], None]) -> None:
        """Call ``listener`` (on the follower's thread) for each newly applied revocation."""
        with self._lock:
            self._listeners.append(listener)

    def apply(self, event: RevocationEvent) -> None:
        with self._lock:
            self._heard = self._monotonic()
            if event.is_heartbeat:
                self._head_seq = max(self._head_seq, event.seq)
                return
            if event.seq <= self._last_seq:
                return  # a replay of what we already have
            if event.kind is RevocationKind.DEVICE:
                self._devices[event.ueid_hex] = event.reason or "device revoked"
            elif event.kind is RevocationKind.CERTIFICATE:
                self._serials[event.serial_hex] = event.reason or "certificate revoked"
            else:  # pragma: no cover - RevocationKind is closed
                raise MalformedError(f"revocation {event.seq} of unknown kind")
            self._last_seq = event.seq
            self._head_seq = max(self._head_seq, event.seq)
            listeners = list(self._listeners)
        _log.info(
            "revocation %d: %s %s (%s)",
            event.seq,
            event.kind.value,
            event.ueid_hex or event.serial_hex,
            event.reason,
        )
        for listener in listeners:
            listener(event)

    def feed_lost(self) -> None:
        """The follower lost the feed; staleness now counts from the last event heard."""

    def revoked_reason(self, identity: PeerIdentity) -> str | None:
        with self._lock:
            if identity.ueid_hex in self._devices:
                return f"device {identity.ueid_hex} revoked: {self._devices[identity.ueid_hex]}"
            if identity.serial_hex in self._serials:
                why = self._serials[identity.serial_hex]
                return f"certificate {identity.serial_hex} revoked: {why}"
        return None

    def check_fresh(self) -> None:
        """Raise UnavailableError when a required feed has not caught up or went silent."""
        if not self._require:
            return
        with self._lock:
            heard = self._heard
        if heard is None:
            raise UnavailableError("revocation feed not synchronised yet", hint="retry shortly")
        silent = self._monotonic() - heard
        if silent > self._max_stale:
            raise UnavailableError(
                f"revocation feed silent for {silent:.0f} s (bound {self._max_stale:.0f} s)",
                hint="the agent refuses calls until its revocation feed is back",
            )

    def matches(self, event: RevocationEvent, identity: PeerIdentity) -> bool:
        if event.kind is RevocationKind.DEVICE:
            return event.ueid_hex == identity.ueid_hex
        if event.kind is RevocationKind.CERTIFICATE:
            return event.serial_hex == identity.serial_hex
        return False


class Authorizer:
    """Authenticates callers and authorises each call (see the module documentation)."""

    def __init__(
        self,
        *,
        trust_domain: str,
        permissions: ModelPermissions,
        revocations: RevocationSet,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not trust_domain or "/" in trust_domain or ":" in trust_domain:
            raise ConfigError(f"trust domain {trust_domain!r} is not a bare domain name")
        self.trust_domain = trust_domain
        self.permissions = permissions
        self.revocations = revocations
        self._clock = clock

    def authenticate(self, auth_context: Mapping[str, Sequence[bytes]]) -> PeerIdentity:
        return identity_from_auth_context(auth_context, trust_domain=self.trust_domain)

    def check_identity(self, identity: PeerIdentity) -> None:
        """Raise unless the caller may still call at all (validity, revocation, feed freshness)."""
        if self._clock() >= identity.not_after:
            raise ExpiredError(f"client certificate of {identity.spiffe_id} has expired")
        reason = self.revocations.revoked_reason(identity)
        if reason is not None:
            raise RevokedError(reason)
        self.revocations.check_fresh()

    def authorize(self, identity: PeerIdentity, model: str) -> None:
        """Raise unless ``identity`` may use ``model`` now."""
        self.check_identity(identity)
        if not self.permissions.permits(identity.ueid_hex, model):
            raise PermissionDeniedError(f"{identity.spiffe_id} may not use model {model!r}")


class CallGuard:
    """One call in flight: cut by a revocation of its caller."""

    __slots__ = ("_event", "_lock", "_wakers", "identity", "reason")

    def __init__(self, identity: PeerIdentity) -> None:
        self.identity = identity
        self.reason: str | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []

    @property
    def cut(self) -> bool:
        return self._event.is_set()

    def on_cut(self, waker: Callable[[], None]) -> None:
        """Run ``waker`` when the call is cut (at once if it already is)."""
        with self._lock:
            if not self._event.is_set():
                self._wakers.append(waker)
                return
        waker()

    def cut_now(self, reason: str) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            wakers = list(self._wakers)
        for waker in wakers:
            waker()

    def raise_if_cut(self) -> None:
        if self._event.is_set():
            raise RevokedError(self.reason or "revoked")


class CallTracker:
    """The guards of calls in flight, cut when a revocation names their caller."""

    def __init__(self, revocations: RevocationSet) -> None:
        self._lock = threading.Lock()
        self._guards: set[CallGuard] = set()
        self._revocations = revocations
        revocations.subscribe(self._on_revocation)

    @contextmanager
    def track(self, identity: PeerIdentity) -> Iterator[CallGuard]:
        guard = CallGuard(identity)
        with self._lock:
            self._guards.add(guard)
        try:
            # a revocation applied between authorisation and registration must not be missed
            reason = self._revocations.revoked_reason(identity)
            if reason is not None:
                guard.cut_now(reason)
            yield guard
        finally:
            with self._lock:
                self._guards.discard(guard)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._guards)

    def _on_revocation(self, event: RevocationEvent) -> None:
        with self._lock:
            hit = [g for g in self._guards if self._revocations.matches(event, g.identity)]
        for guard in hit:
            _log.warning("cutting a call of %s: revocation %d", guard.identity.spiffe_id, event.seq)
            guard.cut_now(
                f"{event.kind.value} revoked during the call: {event.reason or 'revoked'}"
            )
