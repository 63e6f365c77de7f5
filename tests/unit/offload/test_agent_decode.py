"""The agent's request decoder: good inputs decode like the local path; any bytes, shapes and
dtypes only ever raise the package's own evidence errors (hypothesis)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgetrust._proto.edgetrust.v1 import inference_pb2
from edgetrust.errors import EvidenceError, InvalidRequestError, OversizeError
from edgetrust.offload.classify_request import sample_from_request
from edgetrust.offload.images import ColorMode, Preprocessing, to_tensor

GRAY = Preprocessing(height=8, width=8, color=ColorMode.GRAY, mean=(0.5,), std=(0.5,))
LIMIT = 4096


def decode(**fields: object) -> np.ndarray:
    request = inference_pb2.ClassifyRequest(model="m", **fields)  # type: ignore[arg-type]
    return sample_from_request(request, GRAY, max_payload_bytes=LIMIT)


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_encoded_image_and_pixels_decode_like_the_local_path() -> None:
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    expected = to_tensor(pixels, GRAY)[0]
    as_image = decode(image=png(pixels))
    as_tensor = decode(
        tensor=inference_pb2.Tensor(
            dtype=inference_pb2.DTYPE_UINT8, shape=[8, 8], data=pixels.tobytes()
        )
    )
    assert as_image.shape == (1, 8, 8)
    assert np.array_equal(as_image, expected)
    assert np.array_equal(as_tensor, expected)


def test_preprocessed_float_tensor_passes_through() -> None:
    sample = np.random.default_rng(0).standard_normal((1, 8, 8)).astype(np.float32)
    tensor = inference_pb2.Tensor(
        dtype=inference_pb2.DTYPE_FLOAT32, shape=[1, 8, 8], data=sample.tobytes()
    )
    assert np.array_equal(decode(tensor=tensor), sample)


def test_oversized_image_is_oversize() -> None:
    with pytest.raises(OversizeError, match="limit 4096"):
        decode(image=b"\0" * (LIMIT + 1))


def test_oversized_tensor_is_oversize() -> None:
    with pytest.raises(OversizeError):
        decode(
            tensor=inference_pb2.Tensor(
                dtype=inference_pb2.DTYPE_UINT8, shape=[65, 64], data=b"\0" * 4160
            )
        )


def test_shape_whose_product_overflows_int64_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="needs"):
        decode(
            tensor=inference_pb2.Tensor(
                dtype=inference_pb2.DTYPE_UINT8, shape=[2**32, 2**32, 1], data=b""
            )
        )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dtype=st.integers(min_value=-1, max_value=4),
    shape=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=6),
    data=st.binary(max_size=600),
)
def test_any_tensor_raises_only_evidence_errors(dtype: int, shape: list[int], data: bytes) -> None:
    try:
        tensor = inference_pb2.Tensor(dtype=dtype, shape=shape, data=data)
    except ValueError:
        return  # protobuf refuses the enum value before we see it
    try:
        sample = decode(tensor=tensor)
    except EvidenceError:
        return
    assert sample.shape == (1, 8, 8)
    assert sample.dtype == np.float32


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_any_image_bytes_raise_only_evidence_errors(data: bytes) -> None:
    try:
        sample = decode(image=data)
    except EvidenceError:
        return
    assert sample.shape == (1, 8, 8)


@settings(max_examples=100, deadline=None)
@given(
    pixels=st.integers(min_value=1, max_value=20).flatmap(
        lambda h: st.integers(min_value=1, max_value=20).flatmap(
            lambda w: st.binary(min_size=h * w, max_size=h * w).map(
                lambda b: np.frombuffer(b, dtype=np.uint8).reshape(h, w)
            )
        )
    ),
    flip=st.integers(min_value=0, max_value=255),
)
def test_mutated_png_raises_only_evidence_errors(pixels: np.ndarray, flip: int) -> None:
    encoded = bytearray(png(pixels))
    encoded[flip % len(encoded)] ^= 0xA5
    with contextlib.suppress(EvidenceError):
        decode(image=bytes(encoded))
