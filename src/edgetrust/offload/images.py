"""Images in, model tensors out.

One function per step so that the agent, the client backends, the evaluation and the training script
all preprocess identically:

* :func:`load_image` -- a file path, encoded bytes (PNG, JPEG, ... whatever Pillow decodes), a numpy
  array of pixels or a PIL image -> a PIL image in the colour mode the model wants.
* :func:`to_tensor` -- resize / centre-crop / scale / normalise into ``(1, C, H, W)`` float32 as
  described by a :class:`Preprocessing` (the model catalog holds one per model).
* :func:`to_batch` -- several images stacked into ``(N, C, H, W)``.

A float32 numpy array that already has the model's sample shape ``(C, H, W)`` (or ``(1, C, H, W)``)
is taken as a preprocessed tensor and passed through unchanged. Anything that cannot be decoded, is
too large, or has an unusable shape raises :class:`~edgetrust.errors.InvalidRequestError`.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from edgetrust.errors import ConfigError, InvalidRequestError, OversizeError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ColorMode",
    "ImageInput",
    "Preprocessing",
    "load_image",
    "to_batch",
    "to_tensor",
]

#: What a caller may hand to a classifier.
ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview | npt.NDArray[np.generic] | Image.Image"  # noqa: E501

#: Encoded images larger than this are refused before decoding (16 MiB).
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
#: Decoded images with more pixels than this are refused (a decompression-bomb guard, 40 MP).
DEFAULT_MAX_PIXELS = 40_000_000


class ColorMode(StrEnum):
    """The colour mode a model reads: one grey channel or three RGB channels."""

    GRAY = "L"
    RGB = "RGB"

    @property
    def channels(self) -> int:
        return 1 if self is ColorMode.GRAY else 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Preprocessing:
    """How an image becomes the model's input tensor (NCHW, float32).

    Invalid values raise :class:`~edgetrust.errors.ConfigError` (a preprocessing comes from a model
    manifest, which the operator controls).

    Steps, in order: convert to ``color``; if ``resize_shorter`` is set, resize so that the
    shorter side has that length (keeping the aspect ratio) and centre-crop ``height`` x
    ``width``; otherwise resize straight to ``height`` x ``width`` (bilinear); then
    ``x = pixel * scale`` and per channel ``(x - mean) / std``.
    """

    height: int
    width: int
    color: ColorMode
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    resize_shorter: int | None = None

    def __post_init__(self) -> None:
        channels = self.color.channels
        if self.height < 1 or self.width < 1:
            raise ConfigError("preprocessing height and width must be positive")
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ConfigError(f"mean/std must have 1 or {channels} values")
        if any(s == 0 for s in self.std):
            raise ConfigError("std values must be non-zero")
        if self.resize_shorter is not None and self.resize_shorter < max(self.height, self.width):
            raise ConfigError("resize_shorter must be at least the crop size")

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one preprocessed image."""
        return (self.color.channels, self.height, self.width)

    def to_json(self) -> dict[str, object]:
        return {
            "height": self.height,
            "width": self.width,
            "color": str(self.color),
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize_shorter": self.resize_shorter,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Preprocessing:
        """Parse the manifest form written by :meth:`to_json`."""
        try:
            shorter = data.get("resize_shorter")
            return cls(
                height=_int(data["height"]),
                width=_int(data["width"]),
                color=ColorMode(str(data["color"])),
                scale=_float(data.get("scale", 1.0 / 255.0)),
                mean=tuple(_float(v) for v in _list(data.get("mean", [0.0]))),
                std=tuple(_float(v) for v in _list(data.get("std", [1.0]))),
                resize_shorter=None if shorter is None else _int(shorter),
            )
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"invalid preprocessing description: {e}") from e


def load_image(
    image: ImageInput,
    *,
    color: ColorMode = ColorMode.RGB,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode ``image`` into a PIL image in ``color`` mode (fully loaded, detached from files)."""
    if isinstance(image, Image.Image):
        _check_pixels(image.size, max_pixels)
        return image.convert(str(color))
    if isinstance(image, np.ndarray):
        return _from_pixels(image, color=color, max_pixels=max_pixels)
    if isinstance(image, bytes | bytearray | memoryview):
        return _decode(bytes(image), color=color, max_bytes=max_bytes, max_pixels=max_pixels)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise OversizeError(f"image file {path} is {size} bytes (limit {max_bytes})")
            data = path.read_bytes()
        except OSError as e:
            raise InvalidRequestError(f"cannot read image file {path}: {e.strerror or e}") from e
        return _decode(data, color=color, max_bytes=max_bytes, max_pixels=max_pixels)
    raise InvalidRequestError(
        f"unsupported image type {type(image).__name__}: give a path, encoded bytes, a numpy array "
        "or a PIL image"
    )


def to_tensor(
    image: ImageInput,
    spec: Preprocessing,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> npt.NDArray[np.float32]:
    """The model input for one image: ``(1, C, H, W)`` float32."""
    if isinstance(image, np.ndarray) and image.dtype == np.float32:
        return _passthrough(image.astype(np.float32, copy=False), spec)
    pil = load_image(image, color=spec.color, max_bytes=max_bytes, max_pixels=max_pixels)
    pil = _resize(pil, spec)
    pixels = np.asarray(pil, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    chw = np.transpose(pixels, (2, 0, 1)) * np.float32(spec.scale)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(-1, 1, 1)
    tensor = ((chw - mean) / std).astype(np.float32, copy=False)
    return np.ascontiguousarray(tensor[np.newaxis])


def to_batch(
    images: Sequence[ImageInput],
    spec: Preprocessing,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> npt.NDArray[np.float32]:
    """Several images as one ``(N, C, H, W)`` float32 batch."""
    if not images:
        raise InvalidRequestError("no images to classify")
    return np.concatenate(
        [to_tensor(i, spec, max_bytes=max_bytes, max_pixels=max_pixels) for i in images], axis=0
    )


# -- internals -----------------------------------------------------------------------------------


def _decode(data: bytes, *, color: ColorMode, max_bytes: int, max_pixels: int) -> Image.Image:
    if not data:
        raise InvalidRequestError("empty image data")
    if len(data) > max_bytes:
        raise OversizeError(f"image data is {len(data)} bytes (limit {max_bytes})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                _check_pixels(img.size, max_pixels)
                img.load()
                return img.convert(str(color))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise OversizeError(f"image is too large to decode: {e}") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise InvalidRequestError(f"cannot decode image ({len(data)} bytes): {e}") from e


def _from_pixels(
    array: npt.NDArray[np.generic], *, color: ColorMode, max_pixels: int
) -> Image.Image:
    if array.dtype != np.uint8:
        raise InvalidRequestError(
            f"a pixel array must be uint8 (H, W) or (H, W, 1|3|4), got {array.dtype} "
            f"{array.shape}; a preprocessed tensor must be float32 with the model's sample shape"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        mode = "L"
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        mode = "RGB" if array.shape[2] == 3 else "RGBA"
    else:
        raise InvalidRequestError(
            f"a pixel array must have shape (H, W) or (H, W, 1|3|4), got {array.shape}"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise InvalidRequestError(f"empty pixel array {array.shape}")
    _check_pixels((array.shape[1], array.shape[0]), max_pixels)
    return Image.fromarray(np.ascontiguousarray(array), mode=mode).convert(str(color))


def _passthrough(array: npt.NDArray[np.float32], spec: Preprocessing) -> npt.NDArray[np.float32]:
    sample = spec.sample_shape
    if array.shape == sample:
        return np.ascontiguousarray(array[np.newaxis])
    if array.shape == (1, *sample):
        return np.ascontiguousarray(array)
    raise InvalidRequestError(
        f"a float32 array is taken as a preprocessed tensor and must have shape {sample} or "
        f"(1, {', '.join(map(str, sample))}), got {array.shape}; pass pixels as uint8"
    )


def _resize(img: Image.Image, spec: Preprocessing) -> Image.Image:
    if spec.resize_shorter is None:
        if img.size != (spec.width, spec.height):
            img = img.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
        return img
    w, h = img.size
    ratio = spec.resize_shorter / min(w, h)
    new_w, new_h = max(spec.width, round(w * ratio)), max(spec.height, round(h * ratio))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left = (new_w - spec.width) // 2
    top = (new_h - spec.height) // 2
    return img.crop((left, top, left + spec.width, top + spec.height))


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise OversizeError(f"image is {size[0]}x{size[1]} pixels (limit {max_pixels} pixels)")


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r}")
    return value
