"""Accuracy and latency of inference backends, measured the way the seed talk reports them.

For each backend (local fp32, local int8, offloaded to the agent -- anything that implements
:class:`~edgetrust.offload.runtime.InferenceBackend`, or a plain callable wrapped in
:class:`FunctionBackend`), :func:`evaluate` classifies the same images one at a time and
:func:`summarize` computes:

* **end-to-end latency** -- ``Prediction.latency_ms`` as the backend measured it (decode,
  preprocessing, network, queueing, inference); **inference latency** -- ``Prediction.inference_ms``
  (the model run alone). Each as mean, p50, p90 and p99 (numpy's linear-interpolation percentiles).
* **accuracy** -- the share of images whose top-1 label equals the ground-truth label.
* **top-1 agreement** -- the share of images whose top-1 label equals the reference backend's top-1
  (the reference is the fp32 model; it agrees with itself, 1.0).
* **top-3 agreement** -- the share of images whose reference top-1 label is among this backend's
  top-3 labels.
* **confidence deviation** -- the mean over images of ``|p_ref(top1_ref) - p(top1)|``: how far this
  backend's top-1 confidence is from the reference's top-1 confidence (0 for the reference).
* **correct predictions per second** -- correct top-1 predictions divided by the wall-clock time
  of the whole sequential run (so slow *and* wrong both cost), as in the seed talk.

The report names its ``dataset`` and, where the caller knows it, its ``split`` (``"held-out"``:
images the compared models never saw while being trained, calibrated or selected; ``"test"``: a
ground-truth test split; ``"calibration"``: images a quantised model was calibrated on, whose
agreement figures flatter it). ``split`` appears in the JSON and under the table.

Images a backend fails on (an edgetrust :class:`~edgetrust.errors.Error`) are counted in
``errors`` and left out of every metric; the agreement metrics use the images both backends
classified. :func:`plot_accuracy_latency` draws accuracy against p50 end-to-end latency as a PNG
with Pillow (no matplotlib).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgetrust.errors import Error, InvalidRequestError
from edgetrust.offload.images import ImageInput
from edgetrust.offload.runtime import InferenceBackend, Prediction

__all__ = [
    "BackendReport",
    "EvaluationReport",
    "FunctionBackend",
    "LatencyStats",
    "evaluate",
    "plot_accuracy_latency",
    "summarize",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyStats:
    """Latency summary in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencyStats:
        """Summarise ``samples_ms`` (all zeros for an empty sequence)."""
        if not samples_ms:
            zero = 0.0
            return cls(
                count=0,
                mean_ms=zero,
                p50_ms=zero,
                p90_ms=zero,
                p99_ms=zero,
                min_ms=zero,
                max_ms=zero,
            )
        data = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(data, [50, 90, 99])
        return cls(
            count=len(data),
            mean_ms=float(data.mean()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            min_ms=float(data.min()),
            max_ms=float(data.max()),
        )

    def to_json(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "mean_ms": round(self.mean_ms, 4),
            "p50_ms": round(self.p50_ms, 4),
            "p90_ms": round(self.p90_ms, 4),
            "p99_ms": round(self.p99_ms, 4),
            "min_ms": round(self.min_ms, 4),
            "max_ms": round(self.max_ms, 4),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendReport:
    """The metrics of one backend over one image set (see the module documentation)."""

    backend: str
    model: str
    images: int
    errors: int
    end_to_end: LatencyStats
    inference: LatencyStats
    accuracy: float | None
    top1_agreement: float | None
    top3_agreement: float | None
    confidence_deviation: float | None
    correct_per_second: float | None
    wall_s: float

    def to_json(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)

        return {
            "backend": self.backend,
            "model": self.model,
            "images": self.images,
            "errors": self.errors,
            "accuracy": r(self.accuracy),
            "top1_agreement": r(self.top1_agreement),
            "top3_agreement": r(self.top3_agreement),
            "confidence_deviation": r(self.confidence_deviation),
            "correct_per_second": r(self.correct_per_second),
            "wall_s": round(self.wall_s, 4),
            "end_to_end": self.end_to_end.to_json(),
            "inference": self.inference.to_json(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationReport:
    """All backends over one data set, compared with the ``reference`` backend."""

    dataset: str
    reference: str
    backends: tuple[BackendReport, ...]
    split: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "reference": self.reference,
            "definitions": {
                "accuracy": "top-1 label == ground truth",
                "top1_agreement": "top-1 label == reference top-1 label",
                "top3_agreement": "reference top-1 label within this backend's top-3",
                "confidence_deviation": "mean |p_ref(top1_ref) - p(top1)|",
                "correct_per_second": "correct top-1 predictions / wall-clock seconds (sequential)",
                "percentiles": "numpy linear interpolation",
            },
            "backends": [b.to_json() for b in self.backends],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def table(self) -> str:
        """A fixed-width text table, one row per backend."""
        head = (
            f"{'backend':<22} {'model':<24} {'n':>5} {'acc':>6} {'top1=':>6} {'top3=':>6} "
            f"{'confΔ':>6} {'e2e p50':>8} {'p90':>7} {'p99':>7} {'inf p50':>8} {'p99':>7} "
            f"{'corr/s':>8}"
        )
        rows = [head, "-" * len(head)]
        rows.extend(
            (
                f"{b.backend[:22]:<22} {b.model[:24]:<24} {b.images:>5} {_pct(b.accuracy):>6} "
                f"{_pct(b.top1_agreement):>6} {_pct(b.top3_agreement):>6} "
                f"{_num(b.confidence_deviation, 3):>6} {b.end_to_end.p50_ms:>8.3f} "
                f"{b.end_to_end.p90_ms:>7.3f} {b.end_to_end.p99_ms:>7.3f} "
                f"{b.inference.p50_ms:>8.3f} {b.inference.p99_ms:>7.3f} "
                f"{_num(b.correct_per_second, 0):>8}"
            )
            for b in self.backends
        )
        rows.append(
            f"latencies in ms; reference = {self.reference}; top1= / top3= = agreement with it"
        )
        if self.split is not None:
            rows.append(f"images: {self.split} split")
        return "\n".join(rows)


class FunctionBackend:
    """Wrap a callable ``(image, top_k) -> Prediction`` as an :class:`InferenceBackend`."""

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Callable[[ImageInput, int], Prediction]) -> None:
        self._name = name
        self._fn = fn

    @property
    def name(self) -> str:
        return self._name

    def classify(self, image: ImageInput, *, top_k: int = 1) -> Prediction:
        return self._fn(image, top_k)


def summarize(
    *,
    backend: str,
    predictions: Sequence[Prediction | None],
    reference: Sequence[Prediction | None] | None,
    labels: Sequence[str] | None,
    wall_s: float,
) -> BackendReport:
    """Compute one backend's metrics (pure: no I/O, no clock).

    ``predictions[i]`` is ``None`` where the backend failed on image ``i``; ``reference`` (same
    length) is the reference backend's predictions, ``labels`` the ground truth.
    """
    n = len(predictions)
    if reference is not None and len(reference) != n:
        raise InvalidRequestError("reference predictions and predictions differ in length")
    if labels is not None and len(labels) != n:
        raise InvalidRequestError("labels and predictions differ in length")
    done = [p for p in predictions if p is not None]
    models = sorted({p.model for p in done})
    accuracy: float | None = None
    correct = 0
    if labels is not None and done:
        correct = sum(
            1 for p, y in zip(predictions, labels, strict=True) if p is not None and p.label == y
        )
        accuracy = correct / len(done)
    top1 = top3 = deviation = None
    if reference is not None:
        pairs = [(p, r) for p, r in zip(predictions, reference, strict=True) if p and r]
        if pairs:
            top1 = sum(p.label == r.label for p, r in pairs) / len(pairs)
            top3 = sum(r.label in p.labels[:3] for p, r in pairs) / len(pairs)
            deviation = sum(abs(r.score - p.score) for p, r in pairs) / len(pairs)
    per_second: float | None = None
    if accuracy is not None and wall_s > 0:
        per_second = correct / wall_s
    return BackendReport(
        backend=backend,
        model=",".join(models) if models else "?",
        images=len(done),
        errors=n - len(done),
        end_to_end=LatencyStats.of([p.latency_ms for p in done]),
        inference=LatencyStats.of([p.inference_ms for p in done]),
        accuracy=accuracy,
        top1_agreement=top1,
        top3_agreement=top3,
        confidence_deviation=deviation,
        correct_per_second=per_second,
        wall_s=wall_s,
    )


def evaluate(
    backends: Sequence[InferenceBackend],
    images: Sequence[ImageInput],
    labels: Sequence[str] | None = None,
    *,
    reference: str | None = None,
    dataset: str = "images",
    split: str | None = None,
    top_k: int = 3,
    warmup: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> EvaluationReport:
    """Classify ``images`` one at a time with every backend and compare them.

    ``reference`` names the backend the others are compared to (default: the first);
    ``dataset`` and ``split`` label the report (see the module documentation).
    ``warmup`` images are classified first and not counted (first-run allocations, connection).
    """
    if not backends:
        raise InvalidRequestError("no backends to evaluate")
    if not images:
        raise InvalidRequestError("no images to evaluate on")
    names = [b.name for b in backends]
    if len(set(names)) != len(names):
        raise InvalidRequestError(f"backend names must be distinct: {names}")
    ref_name = reference or names[0]
    if ref_name not in names:
        raise InvalidRequestError(f"reference backend {ref_name!r} is not among {names}")
    runs: dict[str, tuple[list[Prediction | None], float]] = {}
    for backend in backends:
        for image in list(images)[:warmup]:
            _classify(backend, image, top_k)
        start = clock()
        predictions = [_classify(backend, image, top_k) for image in images]
        runs[backend.name] = (predictions, clock() - start)
    ref_predictions = runs[ref_name][0]
    reports = tuple(
        summarize(
            backend=name,
            predictions=predictions,
            reference=ref_predictions,
            labels=labels,
            wall_s=wall,
        )
        for name, (predictions, wall) in runs.items()
    )
    return EvaluationReport(dataset=dataset, reference=ref_name, backends=reports, split=split)


def _classify(backend: InferenceBackend, image: ImageInput, top_k: int) -> Prediction | None:
    try:
        return backend.classify(image, top_k=top_k)
    except Error:
        return None


# -- the plot ------------------------------------------------------------------------------------

_W, _H = 760, 480
_LEFT, _RIGHT, _TOP, _BOTTOM = 80, 40, 50, 70
_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189)]


def plot_accuracy_latency(report: EvaluationReport, path: str | Path) -> Path:
    """Write a PNG scatter plot: x = end-to-end latency (p50 dot, p90-p99 bar), y = accuracy.

    Backends without ground-truth accuracy are plotted at their top-1 agreement instead (and
    labelled so).
    """
    points = []
    for b in report.backends:
        value, what = (
            (b.accuracy, "accuracy") if b.accuracy is not None else (b.top1_agreement, "agree")
        )
        if value is None or b.images == 0:
            continue
        points.append((b, value, what))
    if not points:
        raise InvalidRequestError("nothing to plot: no backend has accuracy or agreement")
    x_max = _nice_ceiling(max(b.end_to_end.p99_ms for b, _, _ in points) * 1.1)
    y_low = min(value for _, value, _ in points)
    y_min = max(0.0, math.floor((y_low - 0.02) * 20) / 20)
    y_max = 1.0

    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, y0, x1, y1 = _LEFT, _TOP, _W - _RIGHT, _H - _BOTTOM

    def sx(ms: float) -> float:
        return x0 + (x1 - x0) * ms / x_max

    def sy(v: float) -> float:
        return y1 - (y1 - y0) * (v - y_min) / (y_max - y_min)

    draw.rectangle((x0, y0, x1, y1), outline="black")
    for i in range(6):
        ms = x_max * i / 5
        draw.line((sx(ms), y1, sx(ms), y1 + 5), fill="black")
        draw.line((sx(ms), y0, sx(ms), y1), fill=(230, 230, 230))
        draw.text((sx(ms) - 12, y1 + 8), f"{ms:.3g}", fill="black", font=font)
        v = y_min + (y_max - y_min) * i / 5
        draw.line((x0 - 5, sy(v), x0, sy(v)), fill="black")
        draw.line((x0, sy(v), x1, sy(v)), fill=(230, 230, 230))
        draw.text((x0 - 48, sy(v) - 6), f"{v * 100:.1f}%", fill="black", font=font)
    draw.rectangle((x0, y0, x1, y1), outline="black")
    title = f"accuracy vs end-to-end latency -- {report.dataset}"
    draw.text((x0, 15), title, fill="black", font=font)
    x_label = "end-to-end latency, ms (dot p50, bar p90..p99)"
    draw.text(((x0 + x1) // 2 - 120, _H - 30), x_label, fill="black", font=font)
    draw.text((8, y0 - 20), "top-1 accuracy", fill="black", font=font)
    for i, (b, value, what) in enumerate(points):
        colour = _COLOURS[i % len(_COLOURS)]
        cy = sy(value)
        draw.line((sx(b.end_to_end.p90_ms), cy, sx(b.end_to_end.p99_ms), cy), fill=colour, width=2)
        cx = sx(b.end_to_end.p50_ms)
        draw.ellipse((cx - 5, cy - 5, cx + 5, cy + 5), fill=colour, outline="black")
        text = f"{b.backend} ({what} {value * 100:.1f}%, p50 {b.end_to_end.p50_ms:.2f} ms)"
        dy = -16 - 12 * (i % 2) if cy - 30 > y0 else 8 + 12 * (i % 2)
        position = (min(cx + 8, x1 - 6 * len(text)), cy + dy)
        draw.text(position, text, fill=colour, font=font)
    out = Path(path)
    img.save(out, format="PNG")
    return out


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10.0**exponent
        if candidate >= value:
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
