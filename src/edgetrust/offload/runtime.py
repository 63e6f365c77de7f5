"""The inference runtime: onnxruntime sessions behind one small, typed API.

This is the ONLY module of edgetrust that imports :mod:`onnxruntime` (STYLE.md, "one home").
Everything else (the catalog in :mod:`edgetrust.offload.models`, the agent, the client backends,
the evaluation) talks to :class:`OnnxModel` and exchanges :class:`Prediction` values. The
onnxruntime-free vocabulary (:class:`RuntimeSettings`, :class:`OutputKind`, :class:`Prediction`,
:class:`InferenceBackend`, :func:`softmax`, :func:`top_k_indices`) lives in
:mod:`edgetrust.offload.inference` and is re-exported here.

* :func:`session_options` -- the onnxruntime ``SessionOptions`` of a :class:`RuntimeSettings`.
* :class:`OnnxModel` -- one loaded model: input name/shape/dtype, ``run`` (batch -> probabilities),
  ``predict`` (batch -> top-k :class:`Prediction` per row). Safe for concurrent calls:
  onnxruntime's ``InferenceSession.run`` is thread-safe and this class holds no mutable state.
* :class:`OnnxBackend` -- decode + preprocess + :class:`OnnxModel`: the in-process backend.

Errors: a model that cannot be read or loaded, or a run that fails inside onnxruntime, raises
:class:`~edgetrust.errors.InferenceError` (our side); a batch of the wrong shape or dtype raises
:class:`~edgetrust.errors.InvalidRequestError` (the caller's side) *before* onnxruntime sees it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from edgetrust.errors import ConfigError, InferenceError, InvalidRequestError
from edgetrust.offload.images import Preprocessing, to_tensor
from edgetrust.offload.inference import (
    ExecutionMode,
    GraphOptimization,
    InferenceBackend,
    OutputKind,
    Prediction,
    RuntimeSettings,
    softmax,
    top_k_indices,
    top_k_predictions,
)

if TYPE_CHECKING:
    from edgetrust.offload.images import ImageInput

__all__ = [
    "ExecutionMode",
    "GraphOptimization",
    "InferenceBackend",
    "OnnxBackend",
    "OnnxModel",
    "OutputKind",
    "Prediction",
    "RuntimeSettings",
    "session_options",
    "softmax",
    "top_k_indices",
]

#: Every exception class onnxruntime raises from its C++ core (none derives from RuntimeError).
_ORT_NATIVE_ERRORS: tuple[type[BaseException], ...] = tuple(
    getattr(ort_state, name)
    for name in (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "EngineError",
        "RuntimeException",
        "InvalidProtobuf",
        "ModelLoaded",
        "NotImplemented",
        "InvalidGraph",
        "EPFail",
        "ModelLoadCanceled",
        "ModelRequiresCompilation",
        "NotFound",
        "DeviceReset",
    )
    if hasattr(ort_state, name)
)
_ORT_ERRORS: tuple[type[BaseException], ...] = (
    *_ORT_NATIVE_ERRORS,
    RuntimeError,
    ValueError,
    TypeError,
)

#: ONNX tensor element types we accept as model inputs, mapped to numpy dtypes.
_ONNX_DTYPES: dict[str, np.dtype[np.generic]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
}


def session_options(settings: RuntimeSettings) -> ort.SessionOptions:
    """The onnxruntime ``SessionOptions`` for ``settings``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = {
        ExecutionMode.SEQUENTIAL: ort.ExecutionMode.ORT_SEQUENTIAL,
        ExecutionMode.PARALLEL: ort.ExecutionMode.ORT_PARALLEL,
    }[settings.execution_mode]
    options.graph_optimization_level = {
        GraphOptimization.DISABLED: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        GraphOptimization.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        GraphOptimization.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        GraphOptimization.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.graph_optimization]
    # Do not spin waiting for work between runs: an agent idles most of the time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


@dataclass(frozen=True, slots=True)
class _InputSpec:
    name: str
    shape: tuple[int | None, ...]  # None = dynamic dimension
    dtype: np.dtype[np.generic]


class OnnxModel:
    """One ONNX classifier loaded into an onnxruntime session.

    Load with :meth:`load` (a file, optionally checked against its SHA-256) or :meth:`from_bytes`.
    The first input is the image batch (dynamic batch dimension expected), the first output the
    class scores, shape ``(N, num_classes)``.
    """

    __slots__ = (
        "_input",
        "_labels",
        "_output_kind",
        "_output_name",
        "_session",
        "name",
        "settings",
        "sha256",
        "source",
    )

    def __init__(
        self,
        *,
        session: ort.InferenceSession,
        name: str,
        labels: Sequence[str] | None,
        output_kind: OutputKind,
        settings: RuntimeSettings,
        sha256: str,
        source: str,
    ) -> None:
        """Wrap an existing session; prefer :meth:`load` or :meth:`from_bytes`."""
        self._session = session
        self.name = name
        self.settings = settings
        self.sha256 = sha256
        self.source = source
        self._output_kind = output_kind
        inputs = session.get_inputs()
        outputs = session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise InferenceError(
                f"model {name!r} must have exactly one input and at least one output "
                f"(has {len(inputs)} inputs, {len(outputs)} outputs)"
            )
        first = inputs[0]
        dtype = _ONNX_DTYPES.get(first.type)
        if dtype is None:
            raise InferenceError(f"model {name!r} has an unsupported input type {first.type}")
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in first.shape)
        self._input = _InputSpec(name=first.name, shape=shape, dtype=dtype)
        self._output_name: str = outputs[0].name
        out_shape = outputs[0].shape
        classes = out_shape[-1] if out_shape and isinstance(out_shape[-1], int) else None
        if labels is not None:
            if classes is not None and len(labels) != classes:
                raise InferenceError(
                    f"model {name!r} has {classes} classes but {len(labels)} labels were given"
                )
            self._labels: tuple[str, ...] | None = tuple(labels)
        else:
            self._labels = None

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        labels: Sequence[str] | None = None,
        output_kind: OutputKind = OutputKind.LOGITS,
        settings: RuntimeSettings | None = None,
        expected_sha256: str | None = None,
    ) -> OnnxModel:
        """Read ``path`` and load it; with ``expected_sha256``, refuse a file whose hash differs."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise InferenceError(f"cannot read model file {p}: {e.strerror or e}") from e
        return cls.from_bytes(
            data,
            name=name or p.stem,
            labels=labels,
            output_kind=output_kind,
            settings=settings,
            expected_sha256=expected_sha256,
            source=str(p),
        )

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        name: str,
        labels: Sequence[str] | None = None,
        output_kind: OutputKind = OutputKind.LOGITS,
        settings: RuntimeSettings | None = None,
        expected_sha256: str | None = None,
        source: str = "<bytes>",
    ) -> OnnxModel:
        """Load a serialized ONNX model (the bytes that were hashed are the bytes loaded)."""
        digest = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise InferenceError(
                f"model {name!r} ({source}) has SHA-256 {digest}, expected {expected_sha256}",
                hint="the model file was modified or replaced; reinstall or regenerate it",
            )
        settings = settings or RuntimeSettings()
        available = ort.get_available_providers()
        missing = [p for p in settings.providers if p not in available]
        if missing:
            # onnxruntime would only warn and fall back to another provider: refuse instead.
            raise ConfigError(
                f"execution provider(s) {', '.join(missing)} not available "
                f"(available: {', '.join(available)})"
            )
        try:
            session = ort.InferenceSession(
                data,
                sess_options=session_options(settings),
                providers=list(settings.providers),
            )
        except _ORT_ERRORS as e:
            raise InferenceError(
                f"onnxruntime cannot load model {name!r} ({source}): {_first_line(e)}"
            ) from e
        return cls(
            session=session,
            name=name,
            labels=labels,
            output_kind=output_kind,
            settings=settings,
            sha256=digest,
            source=source,
        )

    # -- description ---------------------------------------------------------------------------

    @property
    def input_name(self) -> str:
        return self._input.name

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The input shape; ``None`` marks a dynamic dimension (normally the batch)."""
        return self._input.shape

    @property
    def sample_shape(self) -> tuple[int | None, ...]:
        """The shape of one sample (the input shape without the batch dimension)."""
        return self._input.shape[1:]

    @property
    def input_dtype(self) -> np.dtype[np.generic]:
        return self._input.dtype

    @property
    def output_kind(self) -> OutputKind:
        return self._output_kind

    @property
    def labels(self) -> tuple[str, ...] | None:
        return self._labels

    @property
    def num_classes(self) -> int | None:
        if self._labels is not None:
            return len(self._labels)
        shape = self._session.get_outputs()[0].shape
        return shape[-1] if shape and isinstance(shape[-1], int) else None

    def label_of(self, index: int) -> str:
        """The label of class ``index`` (its decimal number when the model has no labels)."""
        if self._labels is not None and 0 <= index < len(self._labels):
            return self._labels[index]
        return str(index)

    # -- running -------------------------------------------------------------------------------

    def check_batch(self, batch: object) -> npt.NDArray[np.generic]:
        """Return ``batch`` if it fits the model input; else raise InvalidRequestError."""
        if not isinstance(batch, np.ndarray):
            raise InvalidRequestError(
                f"model {self.name!r} expects a numpy array, got {type(batch).__name__}"
            )
        if batch.dtype != self._input.dtype:
            raise InvalidRequestError(
                f"model {self.name!r} expects dtype {self._input.dtype}, got {batch.dtype}"
            )
        expected = self._input.shape
        if batch.ndim != len(expected) or any(
            want is not None and got != want
            for got, want in zip(batch.shape, expected, strict=True)
        ):
            raise InvalidRequestError(
                f"model {self.name!r} expects shape {_shape_text(expected)}, got "
                f"{_shape_text(batch.shape)}"
            )
        if batch.shape[0] == 0:
            raise InvalidRequestError(f"model {self.name!r}: empty batch")
        return batch

    def run_timed(self, batch: npt.NDArray[np.generic]) -> tuple[npt.NDArray[np.float32], float]:
        """Class probabilities ``(N, C)`` for ``batch`` and the run time in milliseconds."""
        batch = self.check_batch(batch)
        start = time.perf_counter()
        try:
            outputs = self._session.run([self._output_name], {self._input.name: batch})
        except _ORT_ERRORS as e:
            raise InferenceError(f"model {self.name!r} failed to run: {_first_line(e)}") from e
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        scores = np.asarray(outputs[0])
        if scores.ndim != 2 or scores.shape[0] != batch.shape[0]:
            raise InferenceError(
                f"model {self.name!r} returned scores of shape {scores.shape}, expected "
                f"({batch.shape[0]}, classes)"
            )
        if self._output_kind is OutputKind.LOGITS:
            probs = softmax(scores)
        else:
            probs = scores.astype(np.float32, copy=False)
        return probs, elapsed_ms

    def run(self, batch: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """Class probabilities ``(N, C)`` for ``batch`` (softmax applied to logit outputs)."""
        return self.run_timed(batch)[0]

    def predict(
        self,
        batch: npt.NDArray[np.generic],
        *,
        top_k: int = 1,
        backend: str = "local",
    ) -> list[Prediction]:
        """One :class:`Prediction` per row of ``batch``.

        ``latency_ms`` is set to the run time here; callers that measure more (decoding, the
        network) replace it with :meth:`Prediction.with_timing`.
        """
        probs, elapsed_ms = self.run_timed(batch)
        return self.predictions_from_scores(
            probs, top_k=top_k, backend=backend, inference_ms=elapsed_ms
        )

    def predictions_from_scores(
        self,
        probs: npt.NDArray[np.float32],
        *,
        top_k: int,
        backend: str,
        inference_ms: float,
        latency_ms: float | None = None,
    ) -> list[Prediction]:
        """Turn a probability matrix into predictions (used by batching code that runs once)."""
        return top_k_predictions(
            probs,
            top_k=top_k,
            label_of=self.label_of,
            model=self.name,
            backend=backend,
            inference_ms=inference_ms,
            latency_ms=latency_ms,
        )

    def describe(self) -> dict[str, object]:
        """A JSON-ready description (name, input, classes, settings)."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "source": self.source,
            "input": {
                "name": self._input.name,
                "shape": [d if d is not None else "N" for d in self._input.shape],
                "dtype": str(self._input.dtype),
            },
            "classes": self.num_classes,
            "output": str(self._output_kind),
            "settings": {
                "intra_op_threads": self.settings.intra_op_threads,
                "inter_op_threads": self.settings.inter_op_threads,
                "execution_mode": str(self.settings.execution_mode),
                "graph_optimization": str(self.settings.graph_optimization),
            },
        }

    def __repr__(self) -> str:
        return (
            f"OnnxModel(name={self.name!r}, input={_shape_text(self._input.shape)} "
            f"{self._input.dtype}, classes={self.num_classes})"
        )


class OnnxBackend:
    """An in-process :class:`InferenceBackend`: decode + preprocess + :class:`OnnxModel`.

    This is the building block of the client's local backend and of the evaluation's fp32/int8
    backends. ``latency_ms`` covers decoding, preprocessing and inference; ``inference_ms`` only
    the onnxruntime run.
    """

    __slots__ = ("_name", "max_bytes", "model", "preprocessing")

    def __init__(
        self,
        model: OnnxModel,
        preprocessing: Preprocessing,
        *,
        name: str | None = None,
        max_bytes: int | None = None,
    ) -> None:
        if preprocessing.sample_shape != tuple(model.sample_shape):
            raise InferenceError(
                f"preprocessing produces {preprocessing.sample_shape} but model {model.name!r} "
                f"takes {_shape_text(model.input_shape)}"
            )
        self.model = model
        self.preprocessing = preprocessing
        self._name = name or f"local:{model.name}"
        self.max_bytes = max_bytes

    @property
    def name(self) -> str:
        return self._name

    def tensor(self, image: ImageInput) -> npt.NDArray[np.float32]:
        """The ``(1, C, H, W)`` input for ``image``."""
        if self.max_bytes is None:
            return to_tensor(image, self.preprocessing)
        return to_tensor(image, self.preprocessing, max_bytes=self.max_bytes)

    def classify(self, image: ImageInput, *, top_k: int = 1) -> Prediction:
        start = time.perf_counter()
        batch = self.tensor(image)
        (prediction,) = self.model.predict(batch, top_k=top_k, backend=self._name)
        return prediction.with_timing(latency_ms=(time.perf_counter() - start) * 1000.0)

    def classify_batch(self, images: Sequence[ImageInput], *, top_k: int = 1) -> list[Prediction]:
        """Classify several images in one onnxruntime run (latency shared by the batch)."""
        if not images:
            raise InvalidRequestError("no images to classify")
        start = time.perf_counter()
        batch = np.concatenate([self.tensor(i) for i in images], axis=0)
        predictions = self.model.predict(batch, top_k=top_k, backend=self._name)
        elapsed = (time.perf_counter() - start) * 1000.0
        return [p.with_timing(latency_ms=elapsed) for p in predictions]


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
