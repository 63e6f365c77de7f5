"""The ``edgetrust.v1.Inference`` handlers (see inference.proto) that the agent serves.

* **Authorisation**, on every call and between the messages of a stream
  (:mod:`edgetrust.offload.authz`): the SPIFFE ID of the peer certificate, its validity now, the
  revocation set (kept fresh by a :class:`~edgetrust.offload.feed.RevocationFollower`), the
  per-device model permissions. A revocation cuts the caller's calls in flight: unary calls waiting
  for their result and open streams end with PERMISSION_DENIED within ~0.1 s of the event reaching
  the agent. (gRPC Python cannot close an HTTP/2 connection from the server; the connection stays,
  but every call on it is refused.) A stream's requests go through a
  :class:`~edgetrust.offload.stream_inbox.StreamInbox`, so a revocation also ends an idle stream.
* **Inference.** One :class:`~edgetrust.offload.runtime.OnnxModel` per served model, decoding and
  preprocessing in the handler thread (:mod:`edgetrust.offload.classify_request`), then a
  :class:`~edgetrust.offload.batching.DynamicBatcher` (or a direct run when batching is off).

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
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import numpy as np

from edgetrust._proto.edgetrust.v1 import inference_pb2, inference_pb2_grpc
from edgetrust.errors import (
    DeadlineExceededError,
    Error,
    InvalidRequestError,
    NotFoundError,
    RevokedError,
    StreamLimitError,
    UnavailableError,
)
from edgetrust.offload.agent_metrics import UNKNOWN_MODEL, AgentMetrics
from edgetrust.offload.authz import Authorizer, CallGuard, CallTracker, PeerIdentity
from edgetrust.offload.batching import DynamicBatcher
from edgetrust.offload.classify_request import proto_dtype, sample_from_request
from edgetrust.offload.images import Preprocessing
from edgetrust.offload.rpc_status import ERROR_METADATA_KEY, status_for
from edgetrust.offload.runtime import OnnxModel
from edgetrust.offload.stream_admission import StreamAdmission
from edgetrust.offload.stream_inbox import StreamInbox

# The agent's logger, as before these handlers had a module of their own: operators filter the
# "refused ..." lines by it.
_log = logging.getLogger("edgetrust.offload.agent")

SERVICE_NAME = "edgetrust.v1.Inference"
_POLL_S = 0.1
_MAX_TOP_K = 1000


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
        metrics: AgentMetrics | None = None,
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
        self._metrics = metrics

    # -- RPCs ----------------------------------------------------------------------------------

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        identity = self._identify(context)
        with self._tracker.track(identity) as guard:
            try:
                return self._classify_counted(request, identity, guard, context)
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
                            yield self._classify_counted(item, identity, guard, context)
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
            dtype = proto_dtype(model.input_dtype)
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

    def _classify_counted(
        self, request: Any, identity: PeerIdentity, guard: CallGuard, context: grpc.ServicerContext
    ) -> Any:
        """:meth:`_classify`, counted in ``edgetrust_agent_requests_total`` by model and status."""
        if self._metrics is None:
            return self._classify(request, identity, guard, context)
        model = request.model if request.model in self._models else UNKNOWN_MODEL
        try:
            response = self._classify(request, identity, guard, context)
        except Error as e:
            self._metrics.request(model, status_for(e)[0])
            raise
        self._metrics.request(model, grpc.StatusCode.OK)
        return response

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
        if self._metrics is not None:
            self._metrics.timing(served.name, queue_s=queue_s, run_s=run_s)
            if served.batcher is None:  # a batcher reports its runs itself (on_batch)
                self._metrics.batch(served.name, 1)
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
