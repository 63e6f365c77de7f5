"""Image decoding and preprocessing: every input form, and every rejection reason."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgetrust.errors import ConfigError, EvidenceError, InvalidRequestError, OversizeError
from edgetrust.offload.images import (
    ColorMode,
    Preprocessing,
    load_image,
    to_batch,
    to_tensor,
)
from edgetrust.offload.models import SAMPLES_DIR, digit_samples, get_model

DIGITS = Preprocessing(
    height=32, width=32, color=ColorMode.GRAY, scale=1 / 255, mean=(0.5,), std=(0.5,)
)
IMAGENET = Preprocessing(
    height=224,
    width=224,
    color=ColorMode.RGB,
    scale=1 / 255,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    resize_shorter=256,
)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def digit() -> np.ndarray:
    return _pixels(digit_samples()[0].path)


def test_every_input_form_gives_the_same_tensor(digit: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "d.png"
    path.write_bytes(_png(digit))
    reference = to_tensor(digit, DIGITS)
    assert reference.shape == (1, 1, 32, 32)
    assert reference.dtype == np.float32
    forms: list[object] = [
        path,
        str(path),
        path.read_bytes(),
        bytearray(path.read_bytes()),
        memoryview(path.read_bytes()),
        Image.fromarray(digit),
        digit[:, :, np.newaxis],
        np.repeat(digit[:, :, np.newaxis], 3, axis=2),  # grey as RGB
    ]
    for form in forms:
        np.testing.assert_array_equal(to_tensor(form, DIGITS), reference)  # type: ignore[arg-type]


def test_committed_samples_match_the_training_pixels() -> None:
    from edgetrust.offload.models import digits_test_split

    images, labels = digits_test_split()
    for sample in digit_samples():
        index = next(
            i for i in range(len(images)) if np.array_equal(_pixels(sample.path), images[i])
        )
        assert str(labels[index]) == sample.label


def test_scaling_and_normalisation() -> None:
    white = np.full((8, 8), 255, dtype=np.uint8)
    black = np.zeros((8, 8), dtype=np.uint8)
    np.testing.assert_allclose(to_tensor(white, DIGITS), 1.0, rtol=1e-6)
    np.testing.assert_allclose(to_tensor(black, DIGITS), -1.0, rtol=1e-6)


def test_per_channel_normalisation_and_centre_crop() -> None:
    red = np.zeros((300, 400, 3), dtype=np.uint8)
    red[:, :, 0] = 255
    tensor = to_tensor(red, IMAGENET)
    assert tensor.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(tensor[0, 0], (1.0 - 0.485) / 0.229, rtol=1e-5)
    np.testing.assert_allclose(tensor[0, 1], (0.0 - 0.456) / 0.224, rtol=1e-5)


def test_centre_crop_keeps_the_middle() -> None:
    # left third black, middle white, right third black: a centre crop of a 256x768 image
    # (shorter side already 256) sees only the white middle.
    img = np.zeros((256, 768), dtype=np.uint8)
    img[:, 256:512] = 255
    spec = Preprocessing(
        height=224, width=224, color=ColorMode.GRAY, mean=(0.0,), std=(1.0,), resize_shorter=256
    )
    np.testing.assert_allclose(to_tensor(img, spec), 1.0)


def test_rgba_and_jpeg_are_decoded() -> None:
    rgba = np.zeros((40, 50, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    assert to_tensor(rgba, IMAGENET).shape == (1, 3, 224, 224)
    photo = (SAMPLES_DIR / "photo-flower.jpg").read_bytes()
    assert load_image(photo).mode == "RGB"
    assert load_image(photo, color=ColorMode.GRAY).mode == "L"


def test_float32_tensor_passes_through() -> None:
    tensor = np.random.default_rng(0).standard_normal((1, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(to_tensor(tensor, DIGITS)[0], tensor)
    np.testing.assert_array_equal(to_tensor(tensor[np.newaxis], DIGITS)[0], tensor)


def test_float32_tensor_of_wrong_shape_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="preprocessed tensor"):
        to_tensor(np.zeros((3, 32, 32), dtype=np.float32), DIGITS)


def test_float64_pixels_are_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="must be uint8"):
        to_tensor(np.zeros((8, 8), dtype=np.float64), DIGITS)


def test_int16_pixels_are_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="must be uint8"):
        to_tensor(np.zeros((8, 8), dtype=np.int16), DIGITS)


@pytest.mark.parametrize("shape", [(64,), (8, 8, 2), (2, 8, 8, 3), (0, 8)])
def test_pixel_arrays_of_unusable_shape_are_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidRequestError):
        to_tensor(np.zeros(shape, dtype=np.uint8), DIGITS)


def test_undecodable_bytes_are_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="cannot decode image"):
        to_tensor(b"definitely not an image", DIGITS)


def test_truncated_png_is_rejected(digit: np.ndarray) -> None:
    data = _png(np.tile(digit, (8, 8)))
    with pytest.raises(InvalidRequestError, match="cannot decode image"):
        to_tensor(data[: len(data) // 2], DIGITS)


def test_empty_bytes_are_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="empty image data"):
        to_tensor(b"", DIGITS)


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="cannot read image file"):
        to_tensor(tmp_path / "absent.png", DIGITS)


def test_unsupported_type_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="unsupported image type int"):
        to_tensor(42, DIGITS)  # type: ignore[arg-type]


def test_oversized_bytes_are_rejected(digit: np.ndarray) -> None:
    data = _png(digit)
    with pytest.raises(OversizeError, match="limit"):
        to_tensor(data, DIGITS, max_bytes=len(data) - 1)


def test_oversized_file_is_rejected(digit: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "d.png"
    path.write_bytes(_png(digit))
    with pytest.raises(OversizeError, match="limit"):
        to_tensor(path, DIGITS, max_bytes=10)


def test_too_many_pixels_are_rejected_before_decoding() -> None:
    data = _png(np.zeros((100, 100), dtype=np.uint8))
    with pytest.raises(OversizeError, match="pixels"):
        to_tensor(data, DIGITS, max_pixels=9_999)
    with pytest.raises(OversizeError, match="pixels"):
        to_tensor(np.zeros((100, 100), dtype=np.uint8), DIGITS, max_pixels=9_999)
    with pytest.raises(OversizeError, match="pixels"):
        load_image(Image.new("L", (100, 100)), max_pixels=9_999)


def test_to_batch_stacks_and_refuses_empty() -> None:
    samples = [s.path for s in digit_samples()[:3]]
    assert to_batch(samples, DIGITS).shape == (3, 1, 32, 32)
    with pytest.raises(InvalidRequestError, match="no images"):
        to_batch([], DIGITS)


def test_preprocessing_json_round_trip() -> None:
    for spec in (DIGITS, IMAGENET, get_model("efficientnet-lite0").preprocessing):
        assert Preprocessing.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"height": 0}, "positive"),
        ({"mean": (0.1, 0.2)}, "mean/std"),
        ({"std": (0.0,)}, "non-zero"),
        ({"resize_shorter": 16}, "resize_shorter"),
    ],
)
def test_invalid_preprocessing_is_a_config_error(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"height": 32, "width": 32, "color": ColorMode.GRAY}
    with pytest.raises(ConfigError, match=message):
        Preprocessing(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        {"width": 32, "color": "L"},
        {"height": "32", "width": 32, "color": "L"},
        {"height": 32, "width": 32, "color": "CMYK"},
        {"height": 32, "width": 32, "color": "L", "mean": 0.5},
        {"height": 32, "width": 32, "color": "L", "scale": True},
    ],
    ids=["missing-height", "string-height", "bad-color", "mean-not-list", "bool-scale"],
)
def test_invalid_preprocessing_json_is_a_config_error(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="invalid preprocessing"):
        Preprocessing.from_json(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_request_errors(data: bytes) -> None:
    try:
        tensor = to_tensor(data, DIGITS)
    except EvidenceError:
        return
    assert tensor.shape == (1, 1, 32, 32)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=8, max_size=256))
def test_mutated_png_raises_only_request_errors(noise: bytes) -> None:
    png = bytearray(_png(np.arange(64, dtype=np.uint8).reshape(8, 8)))
    for i, b in enumerate(noise):
        png[(i * 7919) % len(png)] ^= b
    with contextlib.suppress(EvidenceError):
        to_tensor(bytes(png), DIGITS)
