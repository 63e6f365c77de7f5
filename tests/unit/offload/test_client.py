"""The client API: request building for every image form, status translation, backend choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from edgetrust._proto.edgetrust.v1 import inference_pb2
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
    StreamLimitError,
    UnavailableError,
)
from edgetrust.offload.client import (
    Classifier,
    error_from_rpc,
    prediction_from_response,
    request_for,
)
from edgetrust.offload.images import ImageInput
from edgetrust.offload.models import digit_samples
from edgetrust.offload.rpc_status import status_for
from edgetrust.offload.runtime import Prediction
from tests.unit.offload.pki import issue_device, make_ca


class FakeRpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str = "nope", tag: str = "") -> None:
        self._code, self._details = code, details
        self._trailers = (("edgetrust-error", tag),) if tag else ()

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailers

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


@pytest.mark.parametrize(
    ("code", "tag", "expected"),
    [
        (grpc.StatusCode.NOT_FOUND, "not-found", NotFoundError),
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid", InvalidRequestError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded", OverloadedError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "stream-limit", StreamLimitError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "oversize", OversizeError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "", OversizeError),  # gRPC's own size refusal
        (grpc.StatusCode.PERMISSION_DENIED, "revoked", RevokedError),
        (grpc.StatusCode.PERMISSION_DENIED, "forbidden", PermissionDeniedError),
        (grpc.StatusCode.UNAUTHENTICATED, "expired", ExpiredError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "", DeadlineExceededError),
        (grpc.StatusCode.UNAVAILABLE, "", UnavailableError),
        (grpc.StatusCode.INTERNAL, "internal", InferenceError),
    ],
)
def test_statuses_become_our_errors(code: grpc.StatusCode, tag: str, expected: type[Error]) -> None:
    error = error_from_rpc(FakeRpcError(code, "why", tag), agent="a:1")
    assert type(error) is expected
    assert error.message == "agent a:1: why"


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("x"), InvalidRequestError("x"), OverloadedError("x"),
        StreamLimitError("x"), OversizeError("x"), RevokedError("x"),
        PermissionDeniedError("x"), ExpiredError("x"), DeadlineExceededError("x"),
        UnavailableError("x"), InferenceError("x"),
    ],
    ids=lambda e: type(e).__name__,
)  # fmt: skip
def test_the_agents_status_for_an_error_comes_back_as_that_error(error: Error) -> None:
    code, tag = status_for(error)
    assert type(error_from_rpc(FakeRpcError(code, "x", tag), agent="a:1")) is type(error)


# -- requests -------------------------------------------------------------------------------------


def test_path_and_bytes_travel_encoded(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    Image.new("L", (8, 8), 7).save(path)
    data = path.read_bytes()
    for image in (path, str(path), data, bytearray(data), memoryview(data)):
        request = request_for(image, model="m", top_k=2)
        assert request.WhichOneof("input") == "image"
        assert request.image == data
        assert (request.model, request.top_k) == ("m", 2)


def test_missing_file_is_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="cannot read image file"):
        request_for(tmp_path / "absent.png", model="m", top_k=1)


def test_pixel_array_travels_as_uint8_tensor() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    tensor = request_for(pixels, model="m", top_k=1).tensor
    assert tensor.dtype == inference_pb2.DTYPE_UINT8
    assert list(tensor.shape) == [2, 3, 3]
    assert tensor.data == pixels.tobytes()


def test_preprocessed_float_tensor_loses_its_batch_axis() -> None:
    tensor = request_for(np.ones((1, 1, 4, 4), dtype=np.float32), model="m", top_k=1).tensor
    assert tensor.dtype == inference_pb2.DTYPE_FLOAT32
    assert list(tensor.shape) == [1, 4, 4]
    assert len(tensor.data) == 64


def test_pil_image_travels_as_pixels() -> None:
    rgba = Image.new("RGBA", (5, 4), (1, 2, 3, 4))
    tensor = request_for(rgba, model="m", top_k=1).tensor
    assert list(tensor.shape) == [4, 5, 3]
    grey = request_for(Image.new("L", (5, 4)), model="m", top_k=1).tensor
    assert list(grey.shape) == [4, 5]


@pytest.mark.parametrize("image", [np.ones((4, 4), dtype=np.int64), 42, None, [1, 2]])
def test_unsupported_inputs_are_invalid_requests(image: object) -> None:
    with pytest.raises(InvalidRequestError):
        request_for(image, model="m", top_k=1)  # type: ignore[arg-type]


def test_prediction_from_response() -> None:
    response = inference_pb2.ClassifyResponse(
        model="m",
        top=[
            inference_pb2.ClassScore(index=3, label="three", score=0.75),
            inference_pb2.ClassScore(index=1, label="one", score=0.25),
        ],
        inference_us=1500,
    )
    p = prediction_from_response(response, latency_ms=4.0, backend="remote")
    assert (p.label, p.index, p.labels, p.indices) == ("three", 3, ("three", "one"), (3, 1))
    assert p.scores == pytest.approx((0.75, 0.25))
    assert (p.latency_ms, p.inference_ms, p.backend) == (4.0, 1.5, "remote")


# -- backend choice -------------------------------------------------------------------------------


class FakeLocal:
    """An InferenceBackend that answers class 7 and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    @property
    def name(self) -> str:
        return "local"

    def classify(self, image: ImageInput, *, top_k: int = 1) -> Prediction:
        self.seen.append(image)
        return Prediction(
            labels=("7",), indices=(7,), scores=(1.0,), model="fake", backend="local",
            latency_ms=0.1, inference_ms=0.1,
        )  # fmt: skip


def test_local_backend_when_no_agent_is_configured() -> None:
    fake = FakeLocal()
    with Classifier(local=fake, environ={}) as classifier:
        assert classifier.remote is None
        assert classifier.classify(b"img").backend == "local"
    assert fake.seen == [b"img"]


def test_local_backend_when_configured_even_with_an_agent() -> None:
    env = {"EDGETRUST_BACKEND": "local", "EDGETRUST_AGENT": "127.0.0.1:7444"}
    with Classifier(local=FakeLocal(), environ=env) as classifier:
        assert classifier.remote is None


def test_remote_backend_without_certificates_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs the device's cert, key, ca"):
        Classifier(environ={"EDGETRUST_AGENT": "127.0.0.1:7444"})


def test_remote_backend_with_unreadable_key_is_a_key_file_error(tmp_path: Path) -> None:
    ca = make_ca()
    cert, key = issue_device(ca, "0a").write(tmp_path, "dev")
    key.unlink()
    with pytest.raises(KeyFileError, match="device key"):
        Classifier("m", "remote", agent="127.0.0.1:7444", cert=cert, key=key, ca=cert, environ={})


def test_unknown_local_model_is_a_config_error() -> None:
    classifier = Classifier("no-such-model", "local", environ={})
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'"):
        classifier.local_backend()


def test_bundled_local_model_classifies() -> None:
    sample = digit_samples()[9]
    with Classifier("digits-mnv3", "local", environ={}) as classifier:
        prediction = classifier.classify(sample.path)
    assert prediction.index == sample.index
    assert prediction.backend == "local"
