"""The inference agent: ``edgetrust.v1.Inference`` over mutual TLS (see inference.proto).

* **Transport.** ``grpc.ssl_server_credentials(..., root_certificates=cluster CA,
  require_client_auth=True)``: a client without a certificate, with one from another CA or with an
  expired one never gets past the handshake. Health checking (``grpc.health.v1``) and server
  reflection are served on the same port. Health says NOT_SERVING (overall and for
  ``edgetrust.v1.Inference``) while a required revocation feed has not synchronised yet or has been
  silent for longer than ``revocation.max_staleness_s`` -- exactly when every call is refused with
  UNAVAILABLE -- so load balancers and probes take the agent out instead of sending it traffic.
* **Revocations** are followed from the verifier's feed (mutual TLS, see
  :class:`~edgetrust.offload.feed.RevocationFollower`) into the revocation set the handlers check.
* **Handlers** (authorisation on every call, the cut of a revoked caller's calls in flight,
  decoding, batching, the statuses and their ``edgetrust-error`` tags):
  :mod:`edgetrust.offload.inference_service`; open streams are capped by
  :mod:`edgetrust.offload.stream_admission`.

This module is the server around them: TLS material, models, batchers, health, start and stop
(:class:`Agent`). The handlers' names stay importable from here.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health, health_pb2

from edgetrust._proto.edgetrust.v1 import inference_pb2_grpc
from edgetrust.errors import ConfigError, InvalidRequestError, KeyFileError, UnavailableError
from edgetrust.offload.agent_metrics import AgentMetrics
from edgetrust.offload.authz import Authorizer, CallTracker, RevocationSet
from edgetrust.offload.batching import BatchSettings, DynamicBatcher
from edgetrust.offload.classify_request import sample_from_request
from edgetrust.offload.config import AgentConfig
from edgetrust.offload.feed import RevocationFeed, RevocationFollower, feed_from_spec
from edgetrust.offload.images import Preprocessing
from edgetrust.offload.inference_service import SERVICE_NAME, InferenceServicer, ServedModel
from edgetrust.offload.models import bundled_catalog, load_catalog
from edgetrust.offload.runtime import OnnxModel
from edgetrust.offload.stream_admission import StreamAdmission
from edgetrust.offload.stream_inbox import StreamInbox
from edgetrust.service.grpc_server import GrpcServer

__all__ = [
    "SERVICE_NAME",
    "Agent",
    "InferenceServicer",
    "ServedModel",
    "StreamInbox",
    "load_models",
    "sample_from_request",
]

_log = logging.getLogger(__name__)

_HEALTH_POLL_S = 0.1


class _FeedAwareHealth(health.HealthServicer):
    """``grpc.health.v1`` that reports NOT_SERVING while the revocation feed is not fresh.

    ``Check`` looks at the feed at the moment of the call (no lag); the statuses that ``Watch``
    streams are refreshed by :meth:`publish` (the agent calls it every ``_HEALTH_POLL_S``), and
    only changes are sent. After ``enter_graceful_shutdown`` every status stays NOT_SERVING.
    """

    _SERVICES = ("", SERVICE_NAME)

    def __init__(self, revocations: RevocationSet) -> None:
        super().__init__()
        self._revocations = revocations
        self._published: int | None = None
        self._publish_lock = threading.Lock()

    def status_now(self) -> int:
        try:
            self._revocations.check_fresh()
        except UnavailableError:
            return int(health_pb2.HealthCheckResponse.NOT_SERVING)
        return int(health_pb2.HealthCheckResponse.SERVING)

    def publish(self) -> None:
        """Store the current status for both names when it changed (Watch subscribers hear it)."""
        status = self.status_now()
        with self._publish_lock:
            if status == self._published:
                return
            serving = status == health_pb2.HealthCheckResponse.SERVING
            _log.log(
                logging.INFO if self._published is None or serving else logging.WARNING,
                "health: %s (revocation feed %s)",
                "SERVING" if serving else "NOT_SERVING",
                "fresh" if serving else "not synchronised or silent",
            )
            self._published = status
            for name in self._SERVICES:
                self.set(name, status)

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        response = super().Check(request, context)
        if (
            request.service in self._SERVICES
            and response.status == health_pb2.HealthCheckResponse.SERVING
            and self.status_now() != health_pb2.HealthCheckResponse.SERVING
        ):
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        return response


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read {what} {path}: {e.strerror or e}") from e
    if b"-----BEGIN" not in data:
        raise KeyFileError(f"{what} {path} is not PEM")
    return data


def _feed_credentials(
    config: AgentConfig, key: bytes, cert: bytes, client_ca: bytes
) -> grpc.ChannelCredentials:
    """TLS to the verifier's feed port: revocation.ca/cert/key, defaulting to the agent's own."""
    feed = config.revocation
    if (feed.cert is None) != (feed.key is None):
        raise ConfigError("revocation.cert and revocation.key go together")
    if feed.cert is not None and feed.key is not None:
        cert = _read_pem(feed.cert, "feed client certificate")
        key = _read_pem(feed.key, "feed client key")
    ca = _read_pem(feed.ca, "verifier CA") if feed.ca is not None else client_ca
    _require_client_auth(cert, "revocation.cert" if feed.cert else "tls.cert")
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def _require_client_auth(pem: bytes, where: str) -> None:
    """The verifier's feed port checks clientAuth: say so now rather than fail every handshake."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise KeyFileError(f"{where} does not parse as a PEM certificate") from e
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no EKU: any purpose
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise ConfigError(
            f"{where} has no clientAuth extended key usage, so the verifier's revocation feed "
            "(mutual TLS) will refuse it",
            hint="issue the agent a client certificate and set revocation.cert / revocation.key",
        )


def load_models(config: AgentConfig) -> dict[str, tuple[OnnxModel, Preprocessing, str]]:
    """Load the configured catalog entries (hash-checked) with the configured runtime settings."""
    catalog = load_catalog(config.catalog) if config.catalog else bundled_catalog()
    loaded: dict[str, tuple[OnnxModel, Preprocessing, str]] = {}
    for name in config.models:
        try:
            spec = catalog.get(name)
        except InvalidRequestError as e:
            raise ConfigError(f"agent.models: {e.message}") from e
        if not spec.available:
            raise ConfigError(f"model {name!r}: file {spec.path} is missing")
        loaded[name] = (spec.load(config.runtime), spec.preprocessing, spec.description)
    return loaded


class Agent(GrpcServer):
    """A running (or ready to run) inference agent; see the module documentation.

    ``models`` overrides the catalog (name -> (model, preprocessing, description)); ``feed``
    overrides ``config.revocation.feed``. :attr:`live_metrics` are served for Prometheus on
    ``config.metrics_listen`` when set (:mod:`edgetrust.offload.agent_metrics`).
    """

    exit_grace = 2.0

    def __init__(
        self,
        config: AgentConfig,
        *,
        models: Mapping[str, tuple[OnnxModel, Preprocessing, str]] | None = None,
        feed: RevocationFeed | None = None,
    ) -> None:
        if config.tls is None:
            raise ConfigError(
                "the agent serves mutual TLS only: set [tls] cert, key and client_ca",
            )
        self.config = config
        key = _read_pem(config.tls.key, "agent key")
        cert = _read_pem(config.tls.cert, "agent certificate")
        client_ca = _read_pem(config.tls.client_ca, "client CA")

        if feed is None:
            feed = feed_from_spec(
                config.revocation.feed,
                credentials_factory=lambda: _feed_credentials(config, key, cert, client_ca),
                heartbeat_interval_ms=config.revocation.heartbeat_interval_ms,
                server_name=config.revocation.server_name,
            )
        self.revocations = RevocationSet(
            require_feed=feed is not None, max_staleness_s=config.revocation.max_staleness_s
        )
        if feed is None:
            _log.warning("no revocation feed configured: revoked devices will NOT be refused")
        self._follower = RevocationFollower(feed, self.revocations) if feed is not None else None
        self.authorizer = Authorizer(
            trust_domain=config.trust_domain,
            permissions=config.permissions,
            revocations=self.revocations,
        )
        self.tracker = CallTracker(self.revocations)
        self.live_metrics = AgentMetrics()
        self.revocations.subscribe(self.live_metrics.revoked)
        self.streams = StreamAdmission(config.stream_limit)

        loaded = dict(models) if models is not None else load_models(config)
        self.models: dict[str, ServedModel] = {}
        for name, (model, preprocessing, description) in loaded.items():
            batcher = None
            if config.batching_enabled:
                settings = config.batching
                if model.input_shape and model.input_shape[0] is not None:
                    settings = BatchSettings(
                        max_batch_size=1,
                        max_queue_delay_ms=0,
                        max_queue_size=settings.max_queue_size,
                        workers=settings.workers,
                    )
                batcher = DynamicBatcher(
                    model.run,
                    settings=settings,
                    name=name,
                    on_batch=functools.partial(self.live_metrics.batch, name),
                )
            self.models[name] = ServedModel(
                name=name,
                model=model,
                preprocessing=preprocessing,
                description=description,
                batcher=batcher,
            )

        self._health = _FeedAwareHealth(self.revocations)
        self._health_stop = threading.Event()
        self._health_thread: threading.Thread | None = None
        self._pool = futures.ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix="agent"
        )
        # one reader per open stream: stream_limit at most, plus readers of streams that are ending
        self._stream_readers = futures.ThreadPoolExecutor(
            max_workers=max(1, 2 * config.stream_limit), thread_name_prefix="stream-reader"
        )
        # ("grpc.http2.lookahead_bytes", 4 MiB) on both ends was tried: no measurable change for
        # 150 KB requests (unary or stream, A/B in one run; gRPC's BDP probe grows the window on
        # its own), so the default stays
        super().__init__(
            executor=self._pool,
            max_receive_bytes=config.max_message_bytes,
            health_servicer=self._health,
            max_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        inference_pb2_grpc.add_InferenceServicer_to_server(
            InferenceServicer(
                models=self.models,
                authorizer=self.authorizer,
                tracker=self.tracker,
                default_top_k=config.default_top_k,
                max_payload_bytes=config.max_message_bytes,
                stream_window=config.stream_window,
                stream_readers=self._stream_readers,
                stream_idle_s=config.stream_idle_s,
                streams=self.streams,
                metrics=self.live_metrics,
            ),
            self.grpc_server,
        )
        self.serve_health([SERVICE_NAME])
        credentials = grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=True
        )
        self.bind(config.listen, credentials, zero_fails=True)
        self.live_metrics.watch(self._state)
        self.expose_metrics(config.metrics_listen, self.live_metrics.registry)

    def _before_start(self) -> None:
        for served in self.models.values():
            if served.batcher is not None:
                served.batcher.start()
        if self._follower is not None:
            self._follower.start()
        self._health.publish()  # before the port opens: no window with a stale SERVING

    def _after_start(self) -> None:
        self._health_stop.clear()
        self._health_thread = threading.Thread(
            target=self._follow_health, name="agent-health", daemon=True
        )
        self._health_thread.start()
        _log.info("agent listening on %s, models: %s", self.address, ", ".join(self.models))

    def _before_stop(self) -> None:
        self._health_stop.set()
        if self._health_thread is not None:
            self._health_thread.join(1.0)
            self._health_thread = None

    def _after_stop(self) -> None:
        if self._follower is not None:
            self._follower.stop()
        for served in self.models.values():
            if served.batcher is not None:
                served.batcher.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._stream_readers.shutdown(wait=False, cancel_futures=True)
        _log.info("agent stopped %s", self.metrics())

    def metrics(self) -> dict[str, int]:
        """What operators watch: ``calls_active`` (unary calls and streams in progress, gauge)
        and the stream counts of :meth:`StreamAdmission.snapshot` (``streams_open`` gauge,
        ``streams_refused`` ...)."""
        return {"calls_active": self.tracker.active, **self.streams.snapshot()}

    def _state(self) -> dict[str, float | None]:
        """The gauges and stream counts the live metrics read at scrape time."""
        follower = self._follower
        return {
            **self.metrics(),
            "revocation_feed_age_seconds": follower.age_s if follower is not None else None,
            "revoked_identities": self.live_metrics.revoked_identities,
        }

    def _follow_health(self) -> None:
        """Keep the stored health statuses (what Watch streams) in step with the feed."""
        while not self._health_stop.wait(_HEALTH_POLL_S):
            self._health.publish()
