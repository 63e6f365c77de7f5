"""Evaluation metrics on hand-made predictions (exact numbers), the end-to-end run, and the plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetrust.errors import InvalidRequestError, UnavailableError
from edgetrust.offload.evaluation import (
    EvaluationReport,
    FunctionBackend,
    LatencyStats,
    evaluate,
    plot_accuracy_latency,
    summarize,
)
from edgetrust.offload.images import ImageInput
from edgetrust.offload.models import digits_test_split, load_backend
from edgetrust.offload.runtime import Prediction


def _p(labels: str, scores: tuple[float, ...], latency: float, inference: float) -> Prediction:
    return Prediction(
        labels=tuple(labels),
        indices=tuple(int(c) for c in labels),
        scores=scores,
        model="m",
        backend="b",
        latency_ms=latency,
        inference_ms=inference,
    )


# Ground truth 1, 2, 3, 4. The reference gets 3 of 4 right; the candidate 2 of 4 and fails on
# the last image.
LABELS = ["1", "2", "3", "4"]
REFERENCE = [
    _p("123", (0.9, 0.05, 0.05), 1.0, 0.5),
    _p("213", (0.8, 0.1, 0.1), 2.0, 0.5),
    _p("312", (0.6, 0.3, 0.1), 3.0, 0.5),
    _p("543", (0.5, 0.3, 0.2), 4.0, 0.5),
]
CANDIDATE: list[Prediction | None] = [
    _p("123", (0.7, 0.2, 0.1), 10.0, 1.0),  # agrees, correct, |0.9-0.7| = 0.2
    _p("321", (0.5, 0.4, 0.1), 20.0, 2.0),  # disagrees, ref top-1 "2" in top-3, |0.8-0.5| = 0.3
    _p("312", (0.6, 0.2, 0.2), 30.0, 3.0),  # agrees, correct, |0.6-0.6| = 0
    None,  # failed
]


def test_metrics_on_a_hand_made_case() -> None:
    report = summarize(
        backend="cand", predictions=CANDIDATE, reference=REFERENCE, labels=LABELS, wall_s=0.5
    )
    assert report.images == 3
    assert report.errors == 1
    assert report.accuracy == pytest.approx(2 / 3)
    assert report.top1_agreement == pytest.approx(2 / 3)
    assert report.top3_agreement == pytest.approx(1.0)
    assert report.confidence_deviation == pytest.approx((0.2 + 0.3 + 0.0) / 3)
    assert report.correct_per_second == pytest.approx(4.0)  # 2 correct in 0.5 s
    assert report.end_to_end == LatencyStats(
        count=3, mean_ms=20.0, p50_ms=20.0, p90_ms=28.0, p99_ms=29.8, min_ms=10.0, max_ms=30.0
    )
    assert report.inference.p50_ms == pytest.approx(2.0)
    assert report.model == "m"


def test_reference_against_itself() -> None:
    report = summarize(
        backend="ref", predictions=REFERENCE, reference=REFERENCE, labels=LABELS, wall_s=2.0
    )
    assert report.accuracy == pytest.approx(0.75)
    assert report.top1_agreement == 1.0
    assert report.top3_agreement == 1.0
    assert report.confidence_deviation == 0.0
    assert report.correct_per_second == pytest.approx(1.5)
    assert report.end_to_end.p50_ms == pytest.approx(2.5)
    assert report.end_to_end.mean_ms == pytest.approx(2.5)
    assert report.inference == LatencyStats(
        count=4, mean_ms=0.5, p50_ms=0.5, p90_ms=0.5, p99_ms=0.5, min_ms=0.5, max_ms=0.5
    )


def test_without_labels_or_reference() -> None:
    report = summarize(backend="x", predictions=REFERENCE, reference=None, labels=None, wall_s=1.0)
    assert report.accuracy is None
    assert report.top1_agreement is None
    assert report.correct_per_second is None
    assert report.end_to_end.count == 4


def test_all_failed() -> None:
    report = summarize(
        backend="x", predictions=[None, None], reference=[None, None], labels=["1", "2"], wall_s=1
    )
    assert (report.images, report.errors, report.accuracy, report.top1_agreement) == (
        0,
        2,
        None,
        None,
    )
    assert report.end_to_end == LatencyStats.of([])


def test_length_mismatch_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="labels"):
        summarize(backend="x", predictions=REFERENCE, reference=None, labels=["1"], wall_s=1)
    with pytest.raises(InvalidRequestError, match="reference"):
        summarize(
            backend="x", predictions=REFERENCE, reference=REFERENCE[:2], labels=None, wall_s=1
        )


def _scripted(name: str, outputs: list[Prediction | None]) -> FunctionBackend:
    """A backend that replays ``outputs`` in order (None = raises UnavailableError)."""
    queue = list(outputs)

    def classify(image: ImageInput, top_k: int) -> Prediction:
        out = queue.pop(0)
        if out is None:
            raise UnavailableError("agent down")
        return out

    return FunctionBackend(name, classify)


def test_evaluate_uses_the_first_backend_as_reference_and_counts_failures() -> None:
    ticks = iter([0.0, 2.0, 10.0, 10.5])
    report = evaluate(
        [_scripted("ref", REFERENCE), _scripted("cand", CANDIDATE)],
        images=[b"1", b"2", b"3", b"4"],
        labels=LABELS,
        warmup=0,
        clock=lambda: next(ticks),
    )
    assert report.reference == "ref"
    ref, cand = report.backends
    assert (ref.backend, ref.wall_s, ref.accuracy) == ("ref", 2.0, 0.75)
    assert (cand.backend, cand.wall_s, cand.errors) == ("cand", 0.5, 1)
    assert cand.top1_agreement == pytest.approx(2 / 3)
    assert cand.correct_per_second == pytest.approx(4.0)


def test_evaluate_with_a_named_reference() -> None:
    report = evaluate(
        [_scripted("cand", CANDIDATE), _scripted("ref", REFERENCE)],
        images=[1, 2, 3, 4],  # type: ignore[list-item] - replayed, never decoded
        labels=LABELS,
        reference="ref",
        warmup=0,
    )
    assert report.reference == "ref"
    assert report.backends[0].confidence_deviation == pytest.approx(0.5 / 3)


def test_evaluate_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidRequestError, match="no backends"):
        evaluate([], [b"x"])
    with pytest.raises(InvalidRequestError, match="no images"):
        evaluate([_scripted("a", [])], [])
    with pytest.raises(InvalidRequestError, match="distinct"):
        evaluate([_scripted("a", []), _scripted("a", [])], [b"x"])
    with pytest.raises(InvalidRequestError, match="reference backend 'z'"):
        evaluate([_scripted("a", [])], [b"x"], reference="z")


def test_real_fp32_vs_int8_on_part_of_the_test_split(tmp_path: Path) -> None:
    images, labels = digits_test_split()
    report = evaluate(
        [load_backend("digits-mnv3"), load_backend("digits-mnv3-int8")],
        list(images[:60]),
        [str(y) for y in labels[:60]],
        dataset="digits test split (first 60)",
        split="test",
    )
    fp32, int8 = report.backends
    assert fp32.accuracy is not None
    assert fp32.accuracy >= 0.95
    assert int8.top1_agreement is not None
    assert int8.top1_agreement >= 0.95
    assert fp32.end_to_end.p50_ms >= fp32.inference.p50_ms > 0
    data = report.to_json()
    assert data["reference"] == "local:digits-mnv3"
    assert data["split"] == "test"
    assert "local:digits-mnv3-int8" in report.table()
    assert report.table().endswith("\nimages: test split")
    out = plot_accuracy_latency(report, tmp_path / "plot.png")
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (760, 480)
        pixels = np.asarray(img.convert("RGB"))
    assert (pixels != 255).any()


def test_plot_without_any_metric_is_rejected(tmp_path: Path) -> None:
    report = EvaluationReport(
        dataset="d",
        reference="x",
        backends=(
            summarize(backend="x", predictions=REFERENCE, reference=None, labels=None, wall_s=1),
        ),
    )
    with pytest.raises(InvalidRequestError, match="nothing to plot"):
        plot_accuracy_latency(report, tmp_path / "p.png")


def test_a_report_without_a_split_says_none() -> None:
    report = EvaluationReport(
        dataset="d",
        reference="x",
        backends=(
            summarize(backend="x", predictions=REFERENCE, reference=None, labels=None, wall_s=1),
        ),
    )
    assert report.to_json()["split"] is None
    assert "split" not in report.table()
