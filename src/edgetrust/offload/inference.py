"""The onnxruntime-free vocabulary of inference: settings, predictions, the backend Protocol.

:mod:`edgetrust.offload.runtime` is the only module that imports :mod:`onnxruntime`; what the
rest of :mod:`edgetrust.offload` exchanges with it lives here, so that code which only handles
settings or results does not need the runtime:

* :class:`RuntimeSettings` (with :class:`ExecutionMode`, :class:`GraphOptimization`) -- the
  thread and graph settings of a session (exposed to operators); the runtime turns them into
  onnxruntime ``SessionOptions``.
* :class:`OutputKind` -- whether a model's first output holds logits or probabilities.
* :class:`Prediction` -- the top-k classes of one image, with its timings.
* :class:`InferenceBackend` -- the Protocol that the local and the remote (agent) backends
  implement.
* :func:`softmax`, :func:`top_k_indices`, :func:`top_k_predictions` -- the post-processing of a
  model's class scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edgetrust.errors import ConfigError, InvalidRequestError

if TYPE_CHECKING:
    from edgetrust.offload.images import ImageInput

__all__ = [
    "ExecutionMode",
    "GraphOptimization",
    "InferenceBackend",
    "OutputKind",
    "Prediction",
    "RuntimeSettings",
    "softmax",
    "top_k_indices",
    "top_k_predictions",
]


class ExecutionMode(StrEnum):
    """onnxruntime's execution mode: operators in sequence, or independent branches at once."""

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class GraphOptimization(StrEnum):
    """onnxruntime's graph optimisation level."""

    DISABLED = "disabled"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class OutputKind(StrEnum):
    """What the model's first output holds; logits get a softmax in ``OnnxModel.run``."""

    LOGITS = "logits"
    PROBABILITIES = "probabilities"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSettings:
    """Session settings. ``0`` threads means "let onnxruntime decide" (one per physical core).

    The defaults (one intra-op thread, sequential) suit an agent that runs several sessions and
    batches requests itself; a device that runs one model may raise ``intra_op_threads``.
    """

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    graph_optimization: GraphOptimization = GraphOptimization.ALL
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ConfigError("thread counts must be >= 0 (0 = onnxruntime's default)")
        if not self.providers:
            raise ConfigError("at least one execution provider is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """The top-k classes for one image.

    ``latency_ms`` is end to end as the caller saw it (decode, preprocess, network, queueing,
    inference); ``inference_ms`` is the time inside the model (for a batch, the batch's run time).
    """

    labels: tuple[str, ...]
    indices: tuple[int, ...]
    scores: tuple[float, ...]
    model: str
    backend: str
    latency_ms: float
    inference_ms: float

    def __post_init__(self) -> None:
        if not (len(self.labels) == len(self.indices) == len(self.scores)) or not self.labels:
            raise InvalidRequestError("a prediction needs as many labels, indices and scores, >= 1")

    @property
    def label(self) -> str:
        """The top-1 label."""
        return self.labels[0]

    @property
    def index(self) -> int:
        """The top-1 class index."""
        return self.indices[0]

    @property
    def score(self) -> float:
        """The top-1 probability."""
        return self.scores[0]

    def with_timing(self, *, latency_ms: float, backend: str | None = None) -> Prediction:
        """A copy with the end-to-end latency (and optionally the backend name) replaced."""
        return Prediction(
            labels=self.labels,
            indices=self.indices,
            scores=self.scores,
            model=self.model,
            backend=self.backend if backend is None else backend,
            latency_ms=latency_ms,
            inference_ms=self.inference_ms,
        )

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "labels": list(self.labels),
            "indices": list(self.indices),
            "scores": [round(s, 6) for s in self.scores],
            "model": self.model,
            "backend": self.backend,
            "latency_ms": round(self.latency_ms, 3),
            "inference_ms": round(self.inference_ms, 3),
        }


@runtime_checkable
class InferenceBackend(Protocol):
    """Something that classifies one image: the local runtime, or the agent over mTLS.

    Implementations accept every :data:`~edgetrust.offload.images.ImageInput` form (path, encoded
    bytes, numpy array, PIL image), raise :class:`~edgetrust.errors.InvalidRequestError` for bad
    input and a :class:`~edgetrust.errors.ServiceError` subclass when they fail themselves.
    """

    @property
    def name(self) -> str:
        """A short name for reports: ``local-fp32``, ``local-int8``, ``remote``..."""
        ...

    def classify(self, image: ImageInput, *, top_k: int = 1) -> Prediction:
        """The top-``top_k`` classes of ``image``."""
        ...


def softmax(logits: npt.NDArray[np.floating], axis: int = -1) -> npt.NDArray[np.float32]:
    """Numerically stable softmax in float32."""
    shifted = logits.astype(np.float32) - np.max(logits, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    out: npt.NDArray[np.float32] = exp / np.sum(exp, axis=axis, keepdims=True)
    return out


def top_k_indices(scores: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` highest scores of each row, best first; ties go to the lower index."""
    order: npt.NDArray[np.intp] = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    return order


def top_k_predictions(
    probs: npt.NDArray[np.float32],
    *,
    top_k: int,
    label_of: Callable[[int], str],
    model: str,
    backend: str,
    inference_ms: float,
    latency_ms: float | None = None,
) -> list[Prediction]:
    """One :class:`Prediction` per row of the probability matrix ``probs`` (best ``top_k``)."""
    classes = probs.shape[-1]
    if top_k < 1:
        raise InvalidRequestError(f"top_k must be >= 1, got {top_k}")
    k = min(top_k, classes)
    order = top_k_indices(probs, k)
    results: list[Prediction] = []
    for row, idx in zip(probs, order, strict=True):
        indices = tuple(int(i) for i in idx)
        results.append(
            Prediction(
                labels=tuple(label_of(i) for i in indices),
                indices=indices,
                scores=tuple(float(row[i]) for i in indices),
                model=model,
                backend=backend,
                latency_ms=inference_ms if latency_ms is None else latency_ms,
                inference_ms=inference_ms,
            )
        )
    return results
