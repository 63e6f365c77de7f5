"""One client API for local and offloaded classification (the vAccel idea).

    from edgetrust.offload.client import Classifier

    with Classifier(model="digits-mnv3") as classifier:
        prediction = classifier.classify("digit.png")     # path, bytes, numpy array or PIL image
        print(prediction.label, prediction.score, prediction.backend, prediction.latency_ms)

Which backend runs is configuration, not code
(:class:`~edgetrust.offload.client_settings.ClientSettings`):
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
import os
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
    Error,
    InvalidRequestError,
    KeyFileError,
    OverloadedError,
    StreamLimitError,
    UnavailableError,
)
from edgetrust.offload.client_settings import ClientSettings, Transport
from edgetrust.offload.images import ImageInput
from edgetrust.offload.models import bundled_catalog, load_catalog
from edgetrust.offload.persistent_stream import PersistentStream
from edgetrust.offload.rpc_status import error_from_rpc
from edgetrust.offload.runtime import InferenceBackend, Prediction, RuntimeSettings

_log = logging.getLogger(__name__)

#: after the agent refused a stream (its ``agent.max_streams``), calls go unary for this long
STREAM_RETRY_AFTER_S = 10.0


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


class RemoteBackend:
    """The agent over mutual TLS, with the device's operational certificate.

    ``transport`` (:class:`~edgetrust.offload.client_settings.Transport`): ``stream`` sends each
    :meth:`classify` over a :class:`PersistentStream` (a call made while another thread is using
    it goes unary); ``unary`` makes one ``Classify`` call per image. Answers, errors, timeouts
    and retries are the same. When the agent refuses to open a stream because it has as many
    open as it allows (``agent.max_streams``, :class:`~edgetrust.errors.StreamLimitError`), that
    call and the calls of the next ``stream_retry_after_s`` seconds go unary, then a stream is
    tried again; the caller sees no error.
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
        stream_retry_after_s: float = STREAM_RETRY_AFTER_S,
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
        self.stream_retry_after_s = stream_retry_after_s
        self._stream_refused_until = 0.0  # the agent refused a stream: unary until then
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
        response = None
        if (
            stream is not None
            and time.monotonic() >= self._stream_refused_until
            and stream.lock.acquire(blocking=False)
        ):
            try:
                response = self._call(stream.exchange, request)
            except StreamLimitError as e:
                self._stream_refused_until = time.monotonic() + self.stream_retry_after_s
                _log.info("%s; unary calls for the next %g s", e.message, self.stream_retry_after_s)
            finally:
                stream.lock.release()
        if response is None:
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
    """Worth another try: the agent was unreachable or overloaded (no deadline, no refusal; a
    stream refused for the agent's stream limit goes unary at once instead)."""
    if isinstance(error, StreamLimitError):
        return False
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
