"""Remote classification on a real agent: same answers as local fp32, clear statuses for bad input,
health and reflection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from edgetrust._proto.edgetrust.v1 import inference_pb2
from edgetrust.errors import InvalidRequestError, NotFoundError
from edgetrust.offload.agent import Agent
from edgetrust.offload.client import Classifier
from edgetrust.offload.models import digit_samples, get_model
from tests.integration.offload.conftest import MODEL, Creds, Pki, secure_channel

Stub = Callable[..., Any]


@pytest.fixture(scope="module")
def device(pki: Pki) -> Creds:
    return pki.device()[1]


@pytest.fixture
def remote(agent: Agent, device: Creds) -> Classifier:
    return Classifier(
        MODEL,
        "remote",
        agent=agent.address,
        cert=device.cert,
        key=device.key,
        ca=device.ca,
        fallback=False,
        environ={},
    )


def test_remote_top1_equals_local_fp32_on_the_samples(remote: Classifier) -> None:
    local = get_model(MODEL).backend()
    samples = digit_samples()
    assert len(samples) >= 10
    with remote:
        for sample in samples:
            here = local.classify(sample.path, top_k=3)
            there = remote.classify(sample.path, top_k=3)
            assert there.backend == "remote"
            assert there.index == here.index, sample.path.name
            assert there.indices == here.indices
            assert np.allclose(there.scores, here.scores, atol=1e-5)


def test_every_image_form_gives_the_same_answer(remote: Classifier) -> None:
    sample = digit_samples()[7]
    data = sample.path.read_bytes()
    with Image.open(sample.path) as img:
        pil = img.convert("L")
    forms: list[object] = [sample.path, str(sample.path), data, np.asarray(pil), pil]
    with remote:
        answers = {remote.classify(form).index for form in forms}  # type: ignore[arg-type]
    assert answers == {sample.index}


def test_preprocessed_float_tensor_is_accepted(remote: Classifier) -> None:
    spec = get_model(MODEL)
    backend = spec.backend()
    sample = digit_samples()[3]
    tensor = backend.tensor(sample.path)
    with remote:
        assert remote.classify(tensor).index == backend.classify(sample.path).index


def test_list_models_names_the_caller_and_permissions(stub_for: Stub, device: Creds) -> None:
    response = stub_for(device).ListModels(inference_pb2.ListModelsRequest(), timeout=5)
    assert response.caller_spiffe_id.startswith("spiffe://edgetrust.test/device/")
    (info,) = response.models
    assert info.name == MODEL
    assert list(info.input_shape) == [1, 32, 32]
    assert info.num_classes == 10
    assert info.permitted
    assert info.max_batch_size == 8


def test_stream_classifies_in_order(agent: Agent, device: Creds) -> None:
    samples = digit_samples()[:6]
    with Classifier(
        MODEL, "remote", agent=agent.address, cert=device.cert, key=device.key, ca=device.ca,
        environ={},
    ) as remote:  # fmt: skip
        assert remote.remote is not None
        got = [p.index for p in remote.remote.classify_stream([s.path for s in samples])]
    assert got == [s.index for s in samples]


# -- statuses for bad input -------------------------------------------------------------------


def call(stub: Any, **fields: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(inference_pb2.ClassifyRequest(**fields), timeout=5)
    return info.value


def tag_of(error: grpc.RpcError) -> str:
    return dict(error.trailing_metadata() or ()).get("edgetrust-error", "")  # type: ignore[attr-defined]


def test_unknown_model_is_not_found(stub_for: Stub, device: Creds, remote: Classifier) -> None:
    error = call(stub_for(device), model="resnet-9000", image=b"x")
    assert error.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert "unknown model 'resnet-9000'" in error.details()  # type: ignore[attr-defined]
    # the client API turns it into our error tree
    other = Classifier(
        "resnet-9000", "remote", agent=remote.settings.agent, cert=device.cert, key=device.key,
        ca=device.ca, environ={},
    )  # fmt: skip
    with other, pytest.raises(NotFoundError):
        other.classify(digit_samples()[0].path)


def test_undecodable_image_is_invalid_argument(stub_for: Stub, device: Creds) -> None:
    error = call(stub_for(device), model=MODEL, image=b"\x89PNG not really")
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "cannot decode image" in error.details()  # type: ignore[attr-defined]


def test_request_without_input_is_invalid_argument(stub_for: Stub, device: Creds) -> None:
    error = call(stub_for(device), model=MODEL)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("tensor", "needle"),
    [
        (inference_pb2.Tensor(dtype=inference_pb2.DTYPE_UINT8, shape=[8, 8], data=b"\0" * 63),
         "needs 64"),
        (inference_pb2.Tensor(dtype=inference_pb2.DTYPE_UNSPECIFIED, shape=[8, 8], data=b"\0" * 64),
         "dtype"),
        (inference_pb2.Tensor(dtype=inference_pb2.DTYPE_FLOAT32, shape=[1, 8, 8],
                              data=b"\0" * 256), "sample shape"),
        (inference_pb2.Tensor(dtype=inference_pb2.DTYPE_UINT8, shape=[64], data=b"\0" * 64),
         "not an image shape"),
        (inference_pb2.Tensor(dtype=inference_pb2.DTYPE_UINT8, shape=[8, 8, 2], data=b"\0" * 128),
         "(H, W, 1|3|4)"),
    ],
)  # fmt: skip
def test_wrong_tensor_shape_or_dtype_is_invalid_argument(
    stub_for: Stub, device: Creds, tensor: Any, needle: str
) -> None:
    error = call(stub_for(device), model=MODEL, tensor=tensor)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert needle in error.details()  # type: ignore[attr-defined]


def test_oversized_request_is_resource_exhausted(stub_for: Stub, device: Creds) -> None:
    # the test agent bounds requests at 256 KiB: gRPC refuses the message before our code runs
    error = call(stub_for(device), model=MODEL, image=b"\0" * (300 * 1024))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]


def test_payload_just_under_the_grpc_bound_is_checked_by_us(stub_for: Stub, device: Creds) -> None:
    pixels = np.zeros((300, 290), dtype=np.uint8)  # 87 000 bytes: fine
    tensor = inference_pb2.Tensor(
        dtype=inference_pb2.DTYPE_UINT8, shape=list(pixels.shape), data=pixels.tobytes()
    )
    response = stub_for(device).Classify(
        inference_pb2.ClassifyRequest(model=MODEL, tensor=tensor, top_k=2), timeout=5
    )
    assert len(response.top) == 2


def test_top_k_too_large_is_invalid_argument(stub_for: Stub, device: Creds) -> None:
    data = digit_samples()[0].path.read_bytes()
    error = call(stub_for(device), model=MODEL, image=data, top_k=5000)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_client_maps_invalid_argument_to_invalid_request(remote: Classifier) -> None:
    with remote, pytest.raises(InvalidRequestError, match="cannot decode image"):
        remote.classify(b"not an image")


# -- health and reflection --------------------------------------------------------------------


def test_health_reports_serving(agent: Agent, device: Creds) -> None:
    with secure_channel(agent.address, device) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "edgetrust.v1.Inference"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(agent: Agent, device: Creds) -> None:
    with secure_channel(agent.address, device) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert {"edgetrust.v1.Inference", "grpc.health.v1.Health"} <= names
