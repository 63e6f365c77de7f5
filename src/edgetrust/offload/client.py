"""One client API for local and offloaded classification (the vAccel idea).

    from edgetrust.offload.client import Classifier

    with Classifier(model="digits-mnv3") as classifier:
        prediction = classifier.classify("digit.png")     # path, bytes, numpy array or PIL image
        print(prediction.label, prediction.score, prediction.backend, prediction.latency_ms)

Which backend runs is configuration, not code (:class:`~edgetrust.offload.config.ClientSettings`):
``EDGETRUST_BACKEND=local|remote|auto``, ``EDGETRUST_AGENT=host:port`` and the device's
operational certificate (``EDGETRUST_CERT`` / ``EDGETRUST_KEY`` / ``EDGETRUST_CA``), or the
``[client]`` table of the file named by ``EDGETRUST_CONFIG``. With ``auto`` (the default) the
agent is used when one is configured. When the agent cannot be reached (connection refused, TLS
handshake refused, deadline, overloaded after the retries) and ``fallback`` is on, the classifier
logs it, classifies locally and tries the agent again after ``retry_remote_after_s``. A refusal
by the agent's policy (revoked, not permitted, bad input) is never hidden by a fallback: it is
raised.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from PIL import Image

from edgetrust._proto.edgetrust.v1 import inference_pb2, inference_pb2_grpc
from edgetrust.errors import (
    ConfigError,
    DeadlineExceededError,
    Error,
    ExpiredError,
    InferenceError,
    InvalidRequestError,
    KeyFileError,
    NotFoundError,
    OverloadedError,
    OversizeError,
    PermissionDeniedError,
    RevokedError,
    UnavailableError,
)
from edgetrust.offload.config import ClientSettings, Transport
from edgetrust.offload.images import ImageInput
from edgetrust.offload.models import bundled_catalog, load_catalog
from edgetrust.offload.runtime import InferenceBackend, Prediction, RuntimeSettings

_log = logging.getLogger(__name__)

ERROR_METADATA_KEY = "edgetrust-error"


def error_from_rpc(error: grpc.RpcError, *, agent: str) -> Error:
    """Translate a failed call into our error tree (using the agent's ``edgetrust-error`` tag)."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or code.name
    tag = ""
    if isinstance(error, grpc.Call):
        for key, value in error.trailing_metadata() or ():
            if key == ERROR_METADATA_KEY:
                tag = str(value)
    message = f"agent {agent}: {details}"
    if code is grpc.StatusCode.NOT_FOUND:
        return NotFoundError(message)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequestError(message)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        if tag == "overloaded":
            return OverloadedError(message)
        return OversizeError(message)
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return RevokedError(message) if tag == "revoked" else PermissionDeniedError(message)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return ExpiredError(message) if tag == "expired" else PermissionDeniedError(message)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(message)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return UnavailableError(message)
    return InferenceError(message)


def request_for(image: ImageInput, *, model: str, top_k: int, request_id: str = "") -> Any:
    """The ``ClassifyRequest`` for an image in any accepted form (encoded bytes travel as-is).

    Arrays travel as raw little-endian tensors (no PNG round trip); the pixel bytes are copied
    once, straight into the request (no intermediate ``Tensor`` message that protobuf would copy
    again when it is attached).
    """
    request = inference_pb2.ClassifyRequest(model=model, top_k=top_k, request_id=request_id)
    if isinstance(image, bytes):
        request.image = image
    elif isinstance(image, bytearray | memoryview):
        request.image = bytes(image)
    elif isinstance(image, str | os.PathLike):
        path = Path(image)
        try:
            request.image = path.read_bytes()
        except OSError as e:
            raise InvalidRequestError(f"cannot read image file {path}: {e.strerror or e}") from e
    elif isinstance(image, Image.Image):
        pil = image if image.mode in ("L", "RGB") else image.convert("RGB")
        _fill_tensor(request.tensor, np.asarray(pil, dtype=np.uint8))
    elif isinstance(image, np.ndarray):
        array = image
        if array.dtype == np.float32 and array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.dtype not in (np.uint8, np.float32):
            raise InvalidRequestError(
                f"an image array must be uint8 pixels or a float32 tensor, not {array.dtype}"
            )
        _fill_tensor(request.tensor, array)
    else:
        raise InvalidRequestError(
            f"unsupported image type {type(image).__name__}: give a path, encoded bytes, a numpy "
            "array or a PIL image"
        )
    return request


def _fill_tensor(tensor: Any, array: np.ndarray[Any, Any]) -> None:
    tensor.dtype = (
        inference_pb2.DTYPE_UINT8 if array.dtype == np.uint8 else inference_pb2.DTYPE_FLOAT32
    )
    tensor.shape.extend(array.shape)
    little = array.dtype.newbyteorder("<")
    tensor.data = np.ascontiguousarray(array, dtype=little).tobytes()


def prediction_from_response(response: Any, *, latency_ms: float, backend: str) -> Prediction:
    return Prediction(
        labels=tuple(str(c.label) for c in response.top),
        indices=tuple(int(c.index) for c in response.top),
        scores=tuple(float(c.score) for c in response.top),
        model=str(response.model),
        backend=backend,
        latency_ms=latency_ms,
        inference_ms=response.inference_us / 1000.0,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read {what} {path}: {e.strerror or e}") from e


_CLOSE = object()


class _StaleStreamError(UnavailableError):
    """A stream that had answered before was found ended by the agent (never leaves the client)."""


#: An idle persistent stream is ended after this many seconds: on the agent every open stream
#: holds a handler thread (``agent.max_workers``), so a device that stopped calling gives it back.
STREAM_IDLE_S = 3.0


class PersistentStream:
    """One ``ClassifyStream`` reused by successive calls: a call = one request and its response.

    The agent authenticates the caller once per stream instead of once per call, and HTTP/2 sets
    up no new stream per image. Semantics are those of a unary call:

    * **timeout** per call: a watcher thread cancels the stream when a call's answer is late; the
      call raises :class:`DeadlineExceededError` and the next call opens a new stream (a late
      answer can never be taken for the next call's);
    * **errors** are the agent's statuses translated by :func:`error_from_rpc`; any error ends the
      stream (the agent ends it too), the next call opens a new one. A stream that the agent ended
      while it was idle (revocation, restart) is replaced before use, so a revoked device's next
      call is refused on a fresh stream with the agent's current verdict;
    * **one call at a time**: callers hold :attr:`lock` around :meth:`exchange` (the backend
      sends concurrent calls unary instead of queueing them here);
    * **idle**: the watcher ends the stream after ``idle_s`` to ``2 * idle_s`` without calls.
    """

    def __init__(self, open_call: Any, *, agent: str, idle_s: float = STREAM_IDLE_S) -> None:
        self.lock = threading.Lock()
        self._open_call = open_call
        self._agent = agent
        self._idle_s = idle_s
        self._cond = threading.Condition(threading.Lock())
        self._call: Any = None
        self._outbox: queue.SimpleQueue[Any] | None = None
        self._seq = 0
        self._inflight: int | None = None  # the call waiting for its answer
        self._deadline = 0.0
        self._expired: int | None = None  # the call whose answer came too late
        self._last_used = 0.0
        self._answers = 0  # answers received on the current stream
        self._wake_at = math.inf  # when the watcher wakes up next
        self._watcher: threading.Thread | None = None
        self._closed = False

    @property
    def is_open(self) -> bool:
        with self._cond:
            return self._call is not None

    def exchange(self, request: Any, *, timeout: float) -> Any:
        """Send ``request``, return its response (hold :attr:`lock`); our errors only.

        ``timeout`` (seconds) bounds this call alone, like a unary call's ``timeout``. When a
        stream that has answered before turns out to have been ended by the agent (its idle
        limit, ``agent.stream_idle_s``, just before the request went out), the request is sent
        again on a fresh stream within the same deadline: classification has no side effects.
        """
        deadline = time.monotonic() + timeout
        try:
            return self._send(request, deadline, timeout)
        except _StaleStreamError:
            return self._send(request, deadline, timeout)

    def _send(self, request: Any, deadline: float, timeout: float) -> Any:
        with self._cond:
            if self._closed:
                raise UnavailableError(f"agent {self._agent}: the client is closed")
            if self._call is not None and self._call.done():
                self._end_locked()  # ended by the agent while idle: use a fresh one
            if self._call is None:
                self._open_locked()
            call, outbox, reused = self._call, self._outbox, self._answers > 0
            self._seq += 1
            seq = self._inflight = self._seq
            self._deadline = deadline
            if self._deadline < self._wake_at:
                self._cond.notify()
        if outbox is None:  # pragma: no cover - opened above
            raise UnavailableError(f"agent {self._agent}: no stream")
        outbox.put(request)
        try:
            response = next(call)
        except grpc.RpcError as e:
            if self._finish(seq, call, failed=True):
                raise DeadlineExceededError(
                    f"agent {self._agent}: no answer within {timeout:g} s"
                ) from e
            raise error_from_rpc(e, agent=self._agent) from e
        except StopIteration as e:
            self._finish(seq, call, failed=True)
            if reused:
                raise _StaleStreamError(f"agent {self._agent}: the agent ended the stream") from e
            raise UnavailableError(f"agent {self._agent}: the agent ended the stream") from e
        self._finish(seq, call, failed=False)
        return response

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._end_locked()
            self._cond.notify()
            watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(1.0)

    def _finish(self, seq: int, call: Any, *, failed: bool) -> bool:
        """End the exchange ``seq``; True when the watcher found it late."""
        with self._cond:
            if self._inflight == seq:
                self._inflight = None
            self._last_used = time.monotonic()
            if not failed and self._call is call:
                self._answers += 1
            expired = self._expired == seq
            if failed and self._call is call:
                self._end_locked()
            return expired

    def _open_locked(self) -> None:
        outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def requests() -> Iterator[Any]:
            while (item := outbox.get()) is not _CLOSE:
                yield item

        self._call = self._open_call(requests())
        self._outbox = outbox
        self._answers = 0
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name=f"stream-watch {self._agent}", daemon=True
            )
            self._watcher.start()

    def _end_locked(self) -> None:
        call, outbox = self._call, self._outbox
        self._call = self._outbox = None
        if outbox is not None:
            outbox.put(_CLOSE)  # half-close: gRPC's request thread returns
        if call is not None:
            call.cancel()

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._inflight is not None:
                    if now >= self._deadline:
                        self._expired, self._inflight = self._inflight, None
                        self._end_locked()  # the waiting caller sees the call end
                        continue
                    # also look again within idle_s: the call may end long before its deadline
                    self._wake_at = min(self._deadline, now + self._idle_s)
                elif self._call is not None:
                    if now >= self._last_used + self._idle_s:
                        self._end_locked()
                        continue
                    self._wake_at = self._last_used + self._idle_s
                else:
                    self._wake_at = math.inf
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)
                self._wake_at = math.inf


class RemoteBackend:
    """The agent over mutual TLS, with the device's operational certificate.

    ``transport`` (:class:`~edgetrust.offload.config.Transport`): ``stream`` sends each
    :meth:`classify` over a :class:`PersistentStream` (a call made while another thread is using
    it goes unary); ``unary`` makes one ``Classify`` call per image. Answers, errors, timeouts
    and retries are the same.
    """

    def __init__(
        self,
        *,
        agent: str,
        model: str,
        cert: Path,
        key: Path,
        ca: Path,
        server_name: str | None = None,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        transport: Transport | str = Transport.STREAM,
    ) -> None:
        try:
            self.transport = Transport(transport)
        except ValueError as e:
            raise ConfigError(f"transport must be stream or unary, not {transport!r}") from e
        self.agent = agent
        self.model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(ca, "CA certificate"),
            private_key=_read(key, "device key"),
            certificate_chain=_read(cert, "device certificate"),
        )
        options: list[tuple[str, Any]] = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self._channel = grpc.secure_channel(agent, credentials, options=options)
        self._stub = inference_pb2_grpc.InferenceStub(self._channel)
        self._stream = (
            PersistentStream(self._stub.ClassifyStream, agent=agent)
            if self.transport is Transport.STREAM
            else None
        )

    @property
    def name(self) -> str:
        return "remote"

    @property
    def stream(self) -> PersistentStream | None:
        return self._stream

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the TLS connection is up; UnavailableError if not within ``timeout``."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout or self.timeout_s)
        except grpc.FutureTimeoutError as e:
            raise UnavailableError(f"agent {self.agent} is not reachable") from e

    def classify(self, image: ImageInput, *, top_k: int = 1) -> Prediction:
        request = request_for(image, model=self.model, top_k=top_k)
        started = time.perf_counter()
        stream = self._stream
        if stream is not None and stream.lock.acquire(blocking=False):
            try:
                response = self._call(stream.exchange, request)
            finally:
                stream.lock.release()
        else:
            response = self._call(self._stub.Classify, request)
        elapsed = (time.perf_counter() - started) * 1000.0
        return prediction_from_response(response, latency_ms=elapsed, backend=self.name)

    def classify_stream(
        self, images: Iterable[ImageInput], *, top_k: int = 1, timeout_s: float | None = None
    ) -> Iterator[Prediction]:
        """Classify a sequence of images over one ClassifyStream call (results in order)."""
        requests = (
            request_for(image, model=self.model, top_k=top_k, request_id=str(i))
            for i, image in enumerate(images)
        )
        last = time.perf_counter()
        try:
            for response in self._stub.ClassifyStream(requests, timeout=timeout_s):
                now = time.perf_counter()
                yield prediction_from_response(
                    response, latency_ms=(now - last) * 1000.0, backend=self.name
                )
                last = now
        except grpc.RpcError as e:
            raise error_from_rpc(e, agent=self.agent) from e

    def list_models(self) -> list[dict[str, object]]:
        response = self._call(self._stub.ListModels, inference_pb2.ListModelsRequest())
        return [
            {
                "name": m.name,
                "input_shape": list(m.input_shape),
                "num_classes": m.num_classes,
                "permitted": m.permitted,
                "max_batch_size": m.max_batch_size,
                "description": m.description,
            }
            for m in response.models
        ]

    def _call(self, method: Any, request: Any) -> Any:
        """``method(request)`` with the timeout and the retries: a unary stub method (gRPC
        errors) or :meth:`PersistentStream.exchange` (our errors)."""
        attempt = 0
        while True:
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as e:
                error = error_from_rpc(e, agent=self.agent)
                if not _retryable(error) or attempt >= self.retries:
                    raise error from e
            except (UnavailableError, OverloadedError) as e:
                if not _retryable(e) or attempt >= self.retries:
                    raise
            attempt += 1
            time.sleep(self.backoff_s * (2 ** (attempt - 1)))

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._channel.close()


def _retryable(error: Error) -> bool:
    """Worth another try: the agent was unreachable or overloaded (no deadline, no refusal)."""
    return isinstance(error, OverloadedError) or type(error) is UnavailableError


class Classifier:
    """Classify images with the configured backend; see the module documentation.

    Arguments left as None come from the environment, then the config file, then defaults.
    ``local`` replaces the local backend (a custom :class:`InferenceBackend`); ``environ``
    replaces ``os.environ`` (tests).
    """

    def __init__(
        self,
        model: str | None = None,
        backend: str | None = None,
        *,
        agent: str | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        ca: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        fallback: bool | None = None,
        transport: str | None = None,
        config: str | os.PathLike[str] | None = None,
        local: InferenceBackend | None = None,
        runtime: RuntimeSettings | None = None,
        retry_remote_after_s: float = 30.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = ClientSettings.resolve(
            {
                "model": model,
                "backend": backend,
                "agent": agent,
                "cert": cert,
                "key": key,
                "ca": ca,
                "server_name": server_name,
                "timeout": timeout,
                "retries": retries,
                "fallback": fallback,
                "transport": transport,
            },
            environ=environ,
            config_file=Path(config) if config is not None else None,
        )
        self._local = local
        self._runtime = runtime
        self._retry_after = retry_remote_after_s
        self._remote_down_until = 0.0
        self._lock = threading.Lock()
        self._remote: RemoteBackend | None = None
        s = self.settings
        if s.wants_remote:
            missing = [n for n in ("cert", "key", "ca") if getattr(s, n) is None]
            if missing:
                raise ConfigError(
                    f"the remote backend needs the device's {', '.join(missing)}",
                    hint="set EDGETRUST_CERT / EDGETRUST_KEY / EDGETRUST_CA or the [client] table",
                )
            if s.agent is None or s.cert is None or s.key is None or s.ca is None:
                raise ConfigError("incomplete remote configuration")  # pragma: no cover
            self._remote = RemoteBackend(
                agent=s.agent,
                model=s.model,
                cert=s.cert,
                key=s.key,
                ca=s.ca,
                server_name=s.server_name,
                timeout_s=s.timeout_s,
                retries=s.retries,
                transport=s.transport,
            )

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def remote(self) -> RemoteBackend | None:
        return self._remote

    def local_backend(self) -> InferenceBackend:
        """The local backend, loaded on first use."""
        with self._lock:
            if self._local is None:
                catalog = (
                    load_catalog(self.settings.catalog)
                    if self.settings.catalog is not None
                    else bundled_catalog()
                )
                try:
                    spec = catalog.get(self.settings.model)
                except InvalidRequestError as e:
                    raise ConfigError(e.message) from e
                self._local = spec.backend(self._runtime, name="local")
            return self._local

    def classify(self, image: ImageInput, *, top_k: int = 1) -> Prediction:
        """The top-``top_k`` classes of ``image`` (path, bytes, numpy array or PIL image)."""
        remote = self._remote
        if remote is not None and time.monotonic() >= self._remote_down_until:
            try:
                return remote.classify(image, top_k=top_k)
            except (UnavailableError, OverloadedError) as e:
                if not self.settings.fallback:
                    raise
                self._remote_down_until = time.monotonic() + self._retry_after
                _log.warning(
                    "agent %s unavailable (%s); classifying locally for the next %.0f s",
                    remote.agent,
                    e.message,
                    self._retry_after,
                )
        return self.local_backend().classify(image, top_k=top_k)

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "Classifier",
    "RemoteBackend",
    "error_from_rpc",
    "prediction_from_response",
    "request_for",
]
