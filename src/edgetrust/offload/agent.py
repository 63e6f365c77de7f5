"""The inference agent: ``edgetrust.v1.Inference`` over mutual TLS (see inference.proto).

* **Transport.** ``grpc.ssl_server_credentials(..., root_certificates=cluster CA,
  require_client_auth=True)``: a client without a certificate, with one from another CA or with an
  expired one never gets past the handshake. Health checking (``grpc.health.v1``) and server
  reflection are served on the same port. Health says NOT_SERVING (overall and for
  ``edgetrust.v1.Inference``) while a required revocation feed has not synchronised yet or has been
  silent for longer than ``revocation.max_staleness_s`` -- exactly when every call is refused with
  UNAVAILABLE -- so load balancers and probes take the agent out instead of sending it traffic.
* **Authorisation**, on every call and between the messages of a stream
  (:mod:`edgetrust.offload.authz`): the SPIFFE ID of the peer certificate, its validity now, the
  revocation set (kept fresh by a :class:`~edgetrust.offload.feed.RevocationFollower`), the
  per-device model permissions. A revocation cuts the caller's calls in flight: unary calls waiting
  for their result and open streams end with PERMISSION_DENIED within ~0.1 s of the event reaching
  the agent. (gRPC Python cannot close an HTTP/2 connection from the server; the connection stays,
  but every call on it is refused.)
* **Inference.** One :class:`~edgetrust.offload.runtime.OnnxModel` per served model, decoding and
  preprocessing in the handler thread, then a :class:`~edgetrust.offload.batching.DynamicBatcher`
  (or a direct run when batching is off).

Statuses (the trailing metadata key ``edgetrust-error`` names the reason for clients): NOT_FOUND
unknown model; INVALID_ARGUMENT bad input; RESOURCE_EXHAUSTED oversized request ("oversize"), full
queue ("overloaded", retry later) or a stream beyond ``agent.max_streams`` ("stream-limit", send the
call unary; see :mod:`edgetrust.offload.stream_admission`); PERMISSION_DENIED revoked ("revoked") or
not permitted ("forbidden"); UNAUTHENTICATED a certificate that expired while its connection stayed
open ("expired"); DEADLINE_EXCEEDED; UNAVAILABLE shutting down or a stale revocation feed; INTERNAL
the runtime failed. Oversized requests are RESOURCE_EXHAUSTED (not INVALID_ARGUMENT) because gRPC
itself answers RESOURCE_EXHAUSTED for a message over ``max_receive_message_length``; our own check
of the decoded payload answers the same.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
import numpy as np
import numpy.typing as npt
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edgetrust._proto.edgetrust.v1 import inference_pb2, inference_pb2_grpc
from edgetrust.errors import (
    ConfigError,
    DeadlineExceededError,
    Error,
    InvalidRequestError,
    KeyFileError,
    NotFoundError,
    OversizeError,
    RevokedError,
    StreamLimitError,
    UnavailableError,
)
from edgetrust.offload.authz import (
    Authorizer,
    CallGuard,
    CallTracker,
    PeerIdentity,
    RevocationSet,
)
from edgetrust.offload.batching import BatchSettings, DynamicBatcher
from edgetrust.offload.config import AgentConfig
from edgetrust.offload.feed import RevocationFeed, RevocationFollower, feed_from_spec
from edgetrust.offload.images import Preprocessing, to_tensor
from edgetrust.offload.models import bundled_catalog, load_catalog
from edgetrust.offload.rpc_status import ERROR_METADATA_KEY, status_for
from edgetrust.offload.runtime import OnnxModel
from edgetrust.offload.stream_admission import StreamAdmission

_log = logging.getLogger(__name__)

SERVICE_NAME = "edgetrust.v1.Inference"
_POLL_S = 0.1
_HEALTH_POLL_S = 0.1
_MAX_TOP_K = 1000
_STATUS_DTYPES: dict[int, np.dtype[Any]] = {
    inference_pb2.DTYPE_UINT8: np.dtype(np.uint8),
    inference_pb2.DTYPE_FLOAT32: np.dtype(np.float32),
}
_DTYPE_TO_PROTO: dict[str, Any] = {dtype.str: number for number, dtype in _STATUS_DTYPES.items()}


@dataclass(slots=True, kw_only=True)
class ServedModel:
    """A model as the agent serves it."""

    name: str
    model: OnnxModel
    preprocessing: Preprocessing
    description: str = ""
    batcher: DynamicBatcher | None = None

    @property
    def max_batch_size(self) -> int:
        return self.batcher.settings.max_batch_size if self.batcher is not None else 1


class InferenceServicer(inference_pb2_grpc.InferenceServicer):  # type: ignore[misc]
    """The ``edgetrust.v1.Inference`` handlers."""

    def __init__(
        self,
        *,
        models: Mapping[str, ServedModel],
        authorizer: Authorizer,
        tracker: CallTracker,
        default_top_k: int,
        max_payload_bytes: int,
        stream_window: int,
        stream_readers: futures.Executor,
        streams: StreamAdmission,
        stream_idle_s: float = 30.0,
    ) -> None:
        self._models = models
        self._authz = authorizer
        self._tracker = tracker
        self._default_top_k = default_top_k
        self._max_payload = max_payload_bytes
        self._window = stream_window
        self._readers = stream_readers
        self._stream_idle_s = stream_idle_s
        self._streams = streams

    # -- RPCs ----------------------------------------------------------------------------------

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        identity = self._identify(context)
        with self._tracker.track(identity) as guard:
            try:
                return self._classify(request, identity, guard, context)
            except Error as e:
                _abort(context, e, identity)

    def ClassifyStream(  # noqa: N802
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        identity = self._identify(context)
        streams = self._streams
        if not streams.try_open():
            _abort(
                context,
                StreamLimitError(
                    f"the agent has {streams.limit} streams open, its limit (agent.max_streams): "
                    "send this call unary"
                ),
                identity,
            )
        try:
            yield from self._serve_stream(request_iterator, identity, context)
        finally:
            streams.close()

    def _serve_stream(
        self,
        request_iterator: Iterator[Any],
        identity: PeerIdentity,
        context: grpc.ServicerContext,
    ) -> Iterator[Any]:
        """The responses of one admitted stream, until its requests end or an error ends it."""
        with self._tracker.track(identity) as guard:
            inbox = StreamInbox(self._window)
            error: Error | None = None
            try:
                self._readers.submit(inbox.read, request_iterator)
            except RuntimeError:  # the reader pool is shut down: the agent is stopping
                error = UnavailableError("the agent is shutting down")
            guard.on_cut(inbox.wake)
            try:
                while error is None:
                    # a request, the end of the requests, a wake-up, or None after stream_idle_s
                    # without requests: an idle stream gives its handler thread back
                    item = inbox.take(timeout=self._stream_idle_s)
                    if guard.cut:
                        error = RevokedError(guard.reason or "revoked")
                    elif item is StreamInbox.END or item is None:
                        return
                    elif item is not StreamInbox.WAKE:
                        try:
                            yield self._classify(item, identity, guard, context)
                        except Error as e:
                            error = e
            finally:
                inbox.finish()
        _abort(context, error, identity)

    def ListModels(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        identity = self._identify(context)
        try:
            self._authz.check_identity(identity)
        except Error as e:
            _abort(context, e, identity)
        infos = []
        for served in self._models.values():
            model = served.model
            dtype = _DTYPE_TO_PROTO.get(model.input_dtype.str, inference_pb2.DTYPE_UNSPECIFIED)
            infos.append(
                inference_pb2.ModelInfo(
                    name=served.name,
                    input_shape=[d for d in model.sample_shape if d is not None],
                    input_dtype=dtype,
                    num_classes=model.num_classes or 0,
                    description=served.description,
                    permitted=self._authz.permissions.permits(identity.ueid_hex, served.name),
                    max_batch_size=served.max_batch_size,
                )
            )
        return inference_pb2.ListModelsResponse(models=infos, caller_spiffe_id=identity.spiffe_id)

    # -- steps ---------------------------------------------------------------------------------

    def _identify(self, context: grpc.ServicerContext) -> PeerIdentity:
        try:
            return self._authz.authenticate(context.auth_context())  # type: ignore[arg-type]
        except Error as e:
            _abort(context, e, None)

    def _classify(
        self, request: Any, identity: PeerIdentity, guard: CallGuard, context: grpc.ServicerContext
    ) -> Any:
        guard.raise_if_cut()
        self._authz.check_identity(identity)
        served = self._models.get(request.model)
        if served is None:
            raise NotFoundError(
                f"unknown model {request.model!r} (served: {', '.join(self._models)})"
            )
        self._authz.authorize(identity, served.name)
        top_k = int(request.top_k) or self._default_top_k
        if top_k > _MAX_TOP_K:
            raise InvalidRequestError(f"top_k must be at most {_MAX_TOP_K}")
        classes = served.model.num_classes
        if classes is not None:
            top_k = min(top_k, classes)
        if served.batcher is None:
            sample = sample_from_request(
                request, served.preprocessing, max_payload_bytes=self._max_payload
            )
            started = time.perf_counter()
            probs = served.model.run(sample[np.newaxis])[0]
            queue_s, run_s, batch_size = 0.0, time.perf_counter() - started, 1
        else:
            with served.batcher.expect() as slot:
                sample = sample_from_request(
                    request, served.preprocessing, max_payload_bytes=self._max_payload
                )
                remaining = context.time_remaining()
                deadline = time.monotonic() + remaining if remaining is not None else None
                future = slot.submit(sample, deadline=deadline)
            result = _await(future, guard, context)
            probs = np.asarray(result.output, dtype=np.float32)
            queue_s, run_s, batch_size = result.queue_s, result.run_s, result.batch_size
        (prediction,) = served.model.predictions_from_scores(
            probs[np.newaxis], top_k=top_k, backend="agent", inference_ms=run_s * 1000.0
        )
        return inference_pb2.ClassifyResponse(
            model=served.name,
            top=[
                inference_pb2.ClassScore(index=i, label=label, score=score)
                for i, label, score in zip(
                    prediction.indices, prediction.labels, prediction.scores, strict=True
                )
            ],
            queue_us=int(queue_s * 1e6),
            inference_us=int(run_s * 1e6),
            batch_size=batch_size,
            request_id=request.request_id,
        )


def sample_from_request(
    request: Any, preprocessing: Preprocessing, *, max_payload_bytes: int
) -> npt.NDArray[np.float32]:
    """The preprocessed sample ``(C, H, W)`` of one ``ClassifyRequest``.

    Raises only :class:`~edgetrust.errors.EvidenceError` subclasses for bad input
    (InvalidRequestError, OversizeError): the request is the caller's.
    """
    which = request.WhichOneof("input")
    if which is None:
        raise InvalidRequestError("the request has no input: set image or tensor")
    if which == "image":
        data = bytes(request.image)
        if len(data) > max_payload_bytes:
            raise OversizeError(f"image is {len(data)} bytes (limit {max_payload_bytes})")
        sample: npt.NDArray[np.float32] = to_tensor(
            data, preprocessing, max_bytes=max_payload_bytes
        )[0]
        return sample
    tensor = request.tensor
    dtype = _STATUS_DTYPES.get(tensor.dtype)
    if dtype is None:
        raise InvalidRequestError("tensor dtype must be UINT8 (pixels) or FLOAT32 (preprocessed)")
    shape = tuple(int(d) for d in tensor.shape)
    if not 2 <= len(shape) <= 4 or any(d < 1 for d in shape):
        raise InvalidRequestError(f"tensor shape {list(shape)} is not an image shape")
    data = bytes(tensor.data)
    if len(data) > max_payload_bytes:
        raise OversizeError(f"tensor is {len(data)} bytes (limit {max_payload_bytes})")
    expected = math.prod(shape) * dtype.itemsize  # exact: no int64 overflow
    if len(data) != expected:
        raise InvalidRequestError(
            f"tensor data is {len(data)} bytes; shape {list(shape)} of {dtype} needs {expected}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if dtype == np.float32 and shape != preprocessing.sample_shape:
        raise InvalidRequestError(
            f"a float32 tensor must have the model's sample shape "
            f"{list(preprocessing.sample_shape)}, got {list(shape)}"
        )
    batch = to_tensor(array, preprocessing, max_bytes=max_payload_bytes)
    result: npt.NDArray[np.float32] = batch[0]
    return result


class StreamInbox:
    """The requests of one ``ClassifyStream``, read ahead by a pooled reader thread.

    gRPC's request iterator can only be woken by the call ending, so a handler blocked on it could
    not notice a revocation of an idle stream. The handler therefore blocks on this inbox, which a
    revocation wakes (:meth:`wake`, registered with the call's guard) as well as a request or the
    end of the requests. No polling: an idle stream costs no CPU. At most ``window`` requests are
    read ahead of the handler (back-pressure reaches the client through HTTP/2 flow control).
    """

    END = object()  # the requests ended (half-close, cancellation, deadline)
    WAKE = object()  # woken by a revocation

    __slots__ = ("_done", "_items", "_slots")

    def __init__(self, window: int) -> None:
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.Semaphore(window)
        self._done = False

    def read(self, request_iterator: Iterator[Any]) -> None:
        """The reader thread: requests into the inbox until the requests or the handler end."""
        try:
            while True:
                self._slots.acquire()  # the window; finish() releases one to end the wait
                if self._done:
                    return
                self._items.put(next(request_iterator))
        except StopIteration:
            pass
        except grpc.RpcError:
            pass  # the call ended (cancelled, deadline, or the handler aborted it)
        self._items.put(self.END)

    def take(self, timeout: float | None = None) -> Any:
        """The next request, :attr:`END` or :attr:`WAKE`; None after ``timeout`` seconds."""
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is not self.END and item is not self.WAKE:
            self._slots.release()
        return item

    def wake(self) -> None:
        self._items.put(self.WAKE)

    def finish(self) -> None:
        """The handler is done: the reader stops at its next request."""
        self._done = True
        self._slots.release()


def _await(future: futures.Future[Any], guard: CallGuard, context: grpc.ServicerContext) -> Any:
    """Wait for a batched result; give up when the call is cut, cancelled or past its deadline."""
    while True:
        if guard.cut:
            future.cancel()
            raise RevokedError(guard.reason or "revoked")
        if future.done():  # the usual case: an idle batcher ran it in this thread
            wait = 0.0
        else:
            remaining = context.time_remaining()
            if not context.is_active() or (remaining is not None and remaining <= 0):
                future.cancel()
                raise DeadlineExceededError("the call ended before its result was ready")
            wait = _POLL_S if remaining is None else max(0.001, min(_POLL_S, remaining))
        try:
            return future.result(timeout=wait)
        except futures.TimeoutError:
            continue
        except futures.CancelledError as e:
            raise UnavailableError("the request was cancelled") from e


def _abort(
    context: grpc.ServicerContext, error: Error | None, identity: PeerIdentity | None
) -> NoReturn:
    if error is None:  # pragma: no cover - callers pass an error
        error = UnavailableError("call ended")
    code, tag = status_for(error)
    who = identity.spiffe_id if identity is not None else context.peer()
    level = logging.ERROR if code is grpc.StatusCode.INTERNAL else logging.INFO
    _log.log(level, "refused %s: %s %s", who, code.name, error.message)
    context.set_trailing_metadata(((ERROR_METADATA_KEY, tag),))
    context.abort(code, error.message)
    raise error  # pragma: no cover - context.abort always raises


# ------------------------------------------------------------------------------------------------
# Server
# ------------------------------------------------------------------------------------------------


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


class Agent:
    """A running (or ready to run) inference agent; see the module documentation.

    ``models`` overrides the catalog (name -> (model, preprocessing, description)); ``feed``
    overrides ``config.revocation.feed``.
    """

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
                batcher = DynamicBatcher(model.run, settings=settings, name=name)
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
        self._server = grpc.server(
            self._pool,
            options=[
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.max_send_message_length", 1024 * 1024),
                ("grpc.so_reuseport", 0),
                # ("grpc.http2.lookahead_bytes", 4 MiB) on both ends was tried: no measurable
                # change for 150 KB requests (unary or stream, A/B in one run; gRPC's BDP probe
                # grows the window on its own), so the default stays
            ],
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
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
            ),
            self._server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        credentials = grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=True
        )
        try:
            port = self._server.add_secure_port(config.listen, credentials)
        except RuntimeError as e:
            raise ConfigError(f"cannot listen on {config.listen}: {e}") from e
        if port == 0:
            raise ConfigError(f"cannot listen on {config.listen}")
        self.port: int = port
        self.host = config.listen.rpartition(":")[0]
        self._started = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Agent:
        for served in self.models.values():
            if served.batcher is not None:
                served.batcher.start()
        if self._follower is not None:
            self._follower.start()
        self._health.publish()  # before the port opens: no window with a stale SERVING
        self._server.start()
        self._started = True
        self._health_stop.clear()
        self._health_thread = threading.Thread(
            target=self._follow_health, name="agent-health", daemon=True
        )
        self._health_thread.start()
        _log.info("agent listening on %s, models: %s", self.address, ", ".join(self.models))
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, let running ones end within ``grace``."""
        if not self._started:
            return
        self._started = False
        self._health_stop.set()
        if self._health_thread is not None:
            self._health_thread.join(1.0)
            self._health_thread = None
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
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

    def _follow_health(self) -> None:
        """Keep the stored health statuses (what Watch streams) in step with the feed."""
        while not self._health_stop.wait(_HEALTH_POLL_S):
            self._health.publish()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True when it has stopped."""
        return bool(self._server.wait_for_termination(timeout))

    def __enter__(self) -> Agent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
