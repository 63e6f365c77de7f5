"""The verifier gRPC service (``edgetrust.v1.Verifier``) and its server lifecycle.

This module decodes and bounds requests, maps outcomes and errors to gRPC statuses, logs one
structured line per attestation (``logging`` with ``extra`` fields: event, outcome, status,
ueid), counts (:class:`~edgetrust.onboarding.verifier_metrics.Metrics`, also served live for
Prometheus), and runs the server: TLS with a cluster-CA server certificate on
the device port, the revocation feed (:mod:`edgetrust.onboarding.revocation_feed`) on an mTLS
port, gRPC health checking and reflection, graceful stop (health NOT_SERVING, then running calls
finish). The decisions are made by an :class:`AttestationCore`
(:class:`~edgetrust.onboarding.attestation.AttestationService`); :func:`build_verifier_server`
wires it to a registry and the workspace keys.

Status mapping (the contract of ``proto/edgetrust/v1/verifier.proto``):

* a field over its bound -> ``RESOURCE_EXHAUSTED`` (:class:`~edgetrust.errors.OversizeError`);
* a missing or undecodable field -> ``INVALID_ARGUMENT`` (:class:`~edgetrust.errors.MalformedError`,
  :class:`~edgetrust.errors.InvalidRequestError`, unsupported media type). Both are decided before
  anything reaches the registry, so nothing is stored for them;
* appraised and refused -> ``PERMISSION_DENIED``; the message is ``"refused: "`` + the reasons
  joined by ``"; "`` and the signed EAR travels in trailing metadata ``edgetrust-ear-bin``;
* the store or another part of ours failed -> ``UNAVAILABLE`` (store) or ``INTERNAL``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health

from edgetrust._proto.edgetrust.v1 import (
    revocation_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from edgetrust.errors import (
    ASN1Error,
    Error,
    EvidenceError,
    InvalidRequestError,
    MalformedError,
    OversizeError,
    StoreError,
    UnsupportedSchemeError,
)
from edgetrust.onboarding.attestation import (
    AttestationOutcome,
    AttestationRequest,
    AttestationService,
    AttestationSettings,
)
from edgetrust.onboarding.certifier import DEFAULT_LIFETIME, Certifier
from edgetrust.onboarding.nonces import Challenge
from edgetrust.onboarding.revocation_feed import (
    REVOCATIONS_SERVICE,
    FeedSettings,
    RevocationSource,
    RevocationsServicer,
)
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.verifier_client import EAR_METADATA_KEY
from edgetrust.onboarding.verifier_metrics import Metrics
from edgetrust.onboarding.workspace import VerifierKeys
from edgetrust.service.grpc_server import GrpcServer

__all__ = [
    "EAR_METADATA_KEY",
    "AttestationCore",
    "FeedSettings",
    "Metrics",
    "RequestLimits",
    "ServerTLS",
    "VerifierServer",
    "VerifierSettings",
    "build_verifier_server",
    "decode_attest_request",
]

_log = logging.getLogger("edgetrust.verifier")

VERIFIER_SERVICE = "edgetrust.v1.Verifier"


# ------------------------------------------------------------------------------------------------
# Values exchanged with the core
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestLimits:
    """Bounds on every request field; anything larger is refused before any work is done."""

    max_message_bytes: int = 256 * 1024
    max_device_hint: int = 256
    max_session_id: int = 128
    max_chain_certs: int = 8
    max_certificate_bytes: int = 8 * 1024
    max_evidence_bytes: int = 16 * 1024
    max_media_type: int = 256
    max_csr_bytes: int = 4 * 1024


class AttestationCore(Protocol):
    """The verifier's decisions, independent of gRPC."""

    def challenge(self, *, device_hint: str) -> Challenge: ...

    def attest(self, request: AttestationRequest) -> AttestationOutcome:
        """Decide; raise a MalformedError subclass (before storing anything) for bad input."""
        ...


# ------------------------------------------------------------------------------------------------
# Request decoding
# ------------------------------------------------------------------------------------------------


def _bound(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise OversizeError(f"{name} is {size} bytes, over the limit of {limit}")


def decode_attest_request(
    message: Any, limits: RequestLimits, *, peer: str = ""
) -> AttestationRequest:
    """Bound and decode an ``AttestRequest``; raises Oversize/Malformed/InvalidRequestError."""
    session_id: str = message.session_id
    chain_der: Sequence[bytes] = message.chain_der
    evidence: bytes = message.evidence
    media_type: str = message.media_type
    csr_der: bytes = message.csr_der
    # Sizes first: nothing larger than a bound is parsed.
    _bound("session_id", len(session_id.encode()), limits.max_session_id)
    if len(chain_der) > limits.max_chain_certs:
        raise OversizeError(
            f"chain_der has {len(chain_der)} certificates, over the limit of "
            f"{limits.max_chain_certs}"
        )
    for i, der in enumerate(chain_der):
        _bound(f"chain_der[{i}]", len(der), limits.max_certificate_bytes)
    _bound("evidence", len(evidence), limits.max_evidence_bytes)
    _bound("media_type", len(media_type.encode()), limits.max_media_type)
    _bound("csr_der", len(csr_der), limits.max_csr_bytes)
    # Presence.
    for name, present in (
        ("session_id", bool(session_id)),
        ("chain_der", bool(chain_der)),
        ("evidence", bool(evidence)),
        ("media_type", bool(media_type)),
        ("csr_der", bool(csr_der)),
    ):
        if not present:
            raise InvalidRequestError(f"{name} is missing")
    # Syntax.
    chain: list[x509.Certificate] = []
    for i, der in enumerate(chain_der):
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError as e:
            raise ASN1Error(f"chain_der[{i}] is not a DER X.509 certificate") from e
    try:
        csr = x509.load_der_x509_csr(csr_der)
    except ValueError as e:
        raise ASN1Error("csr_der is not a DER PKCS#10 certificate request") from e
    return AttestationRequest(
        session_id=session_id,
        chain=tuple(chain),
        evidence=evidence,
        media_type=media_type,
        csr=csr,
        peer=peer,
    )


# ------------------------------------------------------------------------------------------------
# gRPC servicers
# ------------------------------------------------------------------------------------------------


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # pragma: no cover - context.abort always raises


def _status_for(error: Error) -> grpc.StatusCode:
    if isinstance(error, OversizeError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, MalformedError | InvalidRequestError | UnsupportedSchemeError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, EvidenceError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(error, StoreError):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def refusal_message(reasons: Sequence[str]) -> str:
    """The PERMISSION_DENIED status message for a refusal."""
    return "refused: " + ("; ".join(reasons) if reasons else "attestation not affirming")


class _VerifierServicer(verifier_pb2_grpc.VerifierServicer):  # type: ignore[misc]
    def __init__(self, core: AttestationCore, limits: RequestLimits, metrics: Metrics) -> None:
        self._core = core
        self._limits = limits
        self._metrics = metrics
        self._chains: dict[tuple[x509.Certificate, ...], list[bytes]] = {}

    def Challenge(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        hint: str = request.device_hint
        try:
            _bound("device_hint", len(hint.encode()), self._limits.max_device_hint)
            challenge = self._core.challenge(device_hint=hint)
        except Error as e:
            self._metrics.bump("challenge_failed")
            _log.warning("challenge failed: %s", e.message, extra={"event": "challenge"})
            _abort(context, _status_for(e), e.message)
        self._metrics.bump("challenges")
        return verifier_pb2.ChallengeResponse(
            nonce=challenge.nonce,
            expires_at_unix_ms=int(challenge.expires_at.timestamp() * 1000),
            session_id=challenge.session_id,
        )

    def Attest(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        started = time.perf_counter()
        peer = context.peer()
        session = str(request.session_id)[:64]
        try:
            decoded = decode_attest_request(request, self._limits, peer=peer)
        except Error as e:
            code = _status_for(e)
            self._metrics.bump("attest_malformed")
            _log.info(
                "attest malformed session=%s peer=%s status=%s: %s",
                session, peer, code.name, e.message,
                extra={"event": "attest", "outcome": "malformed", "status": code.name},
            )  # fmt: skip
            _abort(context, code, e.message)
        try:
            outcome = self._core.attest(decoded)
        except Error as e:
            code = _status_for(e)
            kind = {
                grpc.StatusCode.INVALID_ARGUMENT: "malformed",
                grpc.StatusCode.RESOURCE_EXHAUSTED: "malformed",
                grpc.StatusCode.PERMISSION_DENIED: "refused",
            }.get(code, "error")
            self._metrics.bump(f"attest_{kind}")
            log = _log.info if kind != "error" else _log.warning
            log(
                "attest %s session=%s peer=%s status=%s: %s",
                kind, session, peer, code.name, e.message,
                extra={"event": "attest", "outcome": kind, "status": code.name},
            )  # fmt: skip
            _abort(context, code, e.message)
        except Exception:  # noqa: BLE001 - last resort: a bug must become INTERNAL, not a hang
            self._metrics.bump("attest_error")
            _log.exception("attest crashed session=%s peer=%s", session, peer)
            _abort(context, grpc.StatusCode.INTERNAL, "internal error")
        elapsed = time.perf_counter() - started
        self._metrics.observe_attest(elapsed)
        ueid = outcome.ueid.hex() if outcome.ueid else "-"
        if outcome.certificate is None:
            self._metrics.bump("attest_refused")
            _log.info(
                "attest refused session=%s ueid=%s tier=%s ms=%.1f reasons=%s",
                session, ueid, outcome.tier, elapsed * 1000, "; ".join(outcome.reasons),
                extra={"event": "attest", "outcome": "refused", "ueid": ueid},
            )  # fmt: skip
            context.set_trailing_metadata(((EAR_METADATA_KEY, outcome.ear),))
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, refusal_message(outcome.reasons))
        cert = outcome.certificate
        self._metrics.bump("attest_affirmed")
        self._metrics.bump("certificates_issued")
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "attest affirmed session=%s ueid=%s serial=%x not_after=%s ms=%.1f",
                session, ueid, cert.serial_number, cert.not_valid_after_utc.isoformat(),
                elapsed * 1000,
                extra={"event": "attest", "outcome": "affirmed", "ueid": ueid},
            )  # fmt: skip
        return verifier_pb2.AttestResponse(
            ear=outcome.ear,
            tier=outcome.tier,
            reasons=list(outcome.reasons),
            certificate_der=_der(cert),
            certificate_chain_der=self._chain_der(outcome.certificate_chain),
            not_after_unix_ms=int(cert.not_valid_after_utc.timestamp() * 1000),
        )

    def _chain_der(self, chain: tuple[x509.Certificate, ...]) -> list[bytes]:
        """The issuers' DER (the same few chains every call: encoded once)."""
        found = self._chains.get(chain)
        if found is None:
            found = [_der(c) for c in chain]
            if len(self._chains) < 16:
                self._chains[chain] = found
        return found


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


# ------------------------------------------------------------------------------------------------
# Server lifecycle
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTLS:
    """The server's TLS material (PEM): key, certificate chain, and the client CA for the feed."""

    key_pem: bytes
    certificate_chain_pem: bytes
    client_ca_pem: bytes


class VerifierServer(GrpcServer):
    """A running verifier: Verifier + Revocations + health + reflection over TLS.

    ``listen`` is the device port (server-authenticated TLS: devices have no certificate yet).
    ``feed_listen``, when given, is a second port that requires a client certificate from the
    cluster CA; the revocation feed answers only there (PERMISSION_DENIED elsewhere).
    ``reuse_port``: bind with ``SO_REUSEPORT``, so that the servers of several processes share
    the ports (:mod:`edgetrust.onboarding.verifier_processes`). ``metrics_listen``: serve
    :attr:`metrics` live for Prometheus on this HOST:PORT (:mod:`edgetrust.service.metrics`).
    """

    def __init__(
        self,
        *,
        core: AttestationCore,
        tls: ServerTLS,
        listen: str = "127.0.0.1:0",
        feed_listen: str | None = None,
        revocations: RevocationSource | None = None,
        workers: int = 8,
        feed_streams: int = 16,
        limits: RequestLimits | None = None,
        feed_settings: FeedSettings | None = None,
        metrics: Metrics | None = None,
        reuse_port: bool = False,
        metrics_listen: str | None = None,
    ) -> None:
        self.core = core
        self.limits = limits or RequestLimits()
        self.metrics = metrics or Metrics()
        self._stopping = threading.Event()
        pool = futures.ThreadPoolExecutor(
            max_workers=workers + (feed_streams if revocations is not None else 0),
            thread_name_prefix="verifier",
        )
        super().__init__(
            executor=pool,
            max_receive_bytes=self.limits.max_message_bytes,
            health_servicer=health.HealthServicer(),
            reuse_port=reuse_port,
        )
        verifier_pb2_grpc.add_VerifierServicer_to_server(
            _VerifierServicer(core, self.limits, self.metrics), self.grpc_server
        )
        services = [VERIFIER_SERVICE]
        if revocations is not None:
            revocation_pb2_grpc.add_RevocationsServicer_to_server(
                RevocationsServicer(
                    revocations,
                    feed_settings or FeedSettings(),
                    self._stopping,
                    self.metrics,
                    require_client_cert=True,
                ),
                self.grpc_server,
            )
            services.append(REVOCATIONS_SERVICE)
        self.serve_health(services)
        pair = [(tls.key_pem, tls.certificate_chain_pem)]
        self.bind(listen, grpc.ssl_server_credentials(pair))
        self.feed_port: int | None = None
        if feed_listen is not None:
            self.feed_port = self.bind(
                feed_listen,
                grpc.ssl_server_credentials(
                    pair, root_certificates=tls.client_ca_pem, require_client_auth=True
                ),
                main=False,
            )
        self._feed_host = feed_listen.rsplit(":", 1)[0] if feed_listen else ""
        self.expose_metrics(metrics_listen, self.metrics.registry)

    @property
    def feed_address(self) -> str | None:
        return None if self.feed_port is None else f"{self._feed_host}:{self.feed_port}"

    def _after_start(self) -> None:
        self.set_serving()
        _log.info("verifier listening on %s", self.address, extra={"event": "start"})

    def _before_stop(self) -> None:
        self._stopping.set()  # feed streams end

    def _after_stop(self) -> None:
        _log.info("verifier stopped", extra={"event": "stop", **self.metrics.snapshot()})


# ------------------------------------------------------------------------------------------------
# Wiring
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierSettings:
    """Everything that shapes a running verifier besides its keys and its store."""

    listen: str = "127.0.0.1:7443"
    feed_listen: str | None = None
    trust_domain: str = "edgetrust.local"
    certificate_lifetime: timedelta = DEFAULT_LIFETIME
    workers: int = 8
    attestation: AttestationSettings = field(default_factory=AttestationSettings)
    limits: RequestLimits = field(default_factory=RequestLimits)
    feed: FeedSettings = field(default_factory=FeedSettings)
    #: share the ports with the other processes of a verifier (SO_REUSEPORT)
    reuse_port: bool = False
    #: serve live metrics (Prometheus text format) on this HOST:PORT; None: no endpoint
    metrics_listen: str | None = None


def build_verifier_server(
    *,
    keys: VerifierKeys,
    store: SqlRegistryStore,
    settings: VerifierSettings,
    clock: Callable[[], datetime] | None = None,
) -> VerifierServer:
    """A verifier server (not started) over ``store`` with the workspace's ``keys``."""
    # Concurrent writes (nonces, issuances) are group-committed by the store itself.
    registry = store
    certifier = Certifier(
        ca=keys.cluster_ca,
        chain=keys.cluster_ca.chain,
        store=registry,
        trust_domain=settings.trust_domain,
        lifetime=settings.certificate_lifetime,
        actor=settings.attestation.actor,
    )
    core = AttestationService(
        store=registry,
        certifier=certifier,
        ear_key=keys.ear_key,
        settings=settings.attestation,
        **({"clock": clock} if clock is not None else {}),
    )
    metrics = Metrics()
    metrics.add_source(store.database.stats)
    return VerifierServer(
        core=core,
        tls=ServerTLS(
            key_pem=keys.server_key_pem,
            certificate_chain_pem=keys.server_chain_pem,
            client_ca_pem=keys.cluster_ca_pem,
        ),
        listen=settings.listen,
        feed_listen=settings.feed_listen,
        revocations=registry,
        workers=settings.workers,
        limits=settings.limits,
        feed_settings=settings.feed,
        metrics=metrics,
        reuse_port=settings.reuse_port,
        metrics_listen=settings.metrics_listen,
    )
