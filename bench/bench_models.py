#!/usr/bin/env python
"""Local inference latency of the bundled models, fp32 vs int8, one thread, against a raw floor.

For each model (digits-mnv3 at 32x32 grey, EfficientNet-Lite0 at 224x224 RGB; fp32 and static int8)
it measures, with onnxruntime at 1 intra-op thread, batch 1:

* floor -- a bare ``onnxruntime.InferenceSession.run`` on a ready tensor (same settings), measured
  in this run;
* ``OnnxModel.run`` -- edgetrust's runtime (input checks + softmax) on the same tensor, and its
  ratio to the floor;
* ``OnnxBackend.classify`` -- end to end from encoded image bytes (decode, resize, normalise, run,
  top-3).

Then an evaluation summary (edgetrust.offload.evaluation) of fp32 vs int8 on the digits test split
and on crops of the sample photographs, optionally with the accuracy-vs-latency plot.

Run: ``.venv/bin/python bench/bench_models.py [--quick] [--plot out.png]``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from PIL import Image

from edgetrust.offload.evaluation import evaluate, plot_accuracy_latency
from edgetrust.offload.images import ImageInput
from edgetrust.offload.models import (
    HELD_OUT,
    SAMPLES_DIR,
    digit_samples,
    digits_test_split,
    get_model,
    photo_crops,
)
from edgetrust.offload.runtime import RuntimeSettings

MODELS = ["digits-mnv3", "digits-mnv3-int8", "efficientnet-lite0", "efficientnet-lite0-int8"]


def timings(fn: Callable[[], object], *, iterations: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


def raw_session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def encoded_sample(name: str) -> bytes:
    if name.startswith("digits"):
        return digit_samples()[0].path.read_bytes()
    with Image.open(SAMPLES_DIR / "photo-flower.jpg") as img:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def bench_latency(quick: bool) -> None:
    settings = RuntimeSettings(intra_op_threads=1, inter_op_threads=1)
    print(f"onnxruntime {ort.__version__}, 1 intra-op thread, batch 1; times in ms (p50 / p99)")
    print(
        f"{'model':<24} {'floor (raw ort)':>16} {'OnnxModel.run':>16} {'ratio':>6} "
        f"{'classify(bytes)':>16}"
    )
    p50: dict[str, float] = {}
    for name in MODELS:
        spec = get_model(name)
        small = name.startswith("digits")
        iterations = (300 if small else 40) if quick else (3000 if small else 300)
        warmup = 20 if small else 5
        model = spec.load(settings)
        backend = spec.backend(settings)
        data = encoded_sample(name)
        tensor = backend.tensor(data)
        session = raw_session(str(spec.path))
        input_name = session.get_inputs()[0].name
        floor = timings(
            lambda s=session, n=input_name, t=tensor: s.run(None, {n: t}),
            iterations=iterations,
            warmup=warmup,
        )
        ours = timings(lambda m=model, t=tensor: m.run(t), iterations=iterations, warmup=warmup)
        e2e = timings(
            lambda b=backend, d=data: b.classify(d, top_k=3), iterations=iterations, warmup=warmup
        )
        ratio = statistics.median(ours) / statistics.median(floor)
        p50[name] = statistics.median(ours)
        print(
            f"{name:<24} {pct(floor, 50):>7.3f} / {pct(floor, 99):>6.3f} "
            f"{pct(ours, 50):>7.3f} / {pct(ours, 99):>6.3f} {ratio:>5.2f}x "
            f"{pct(e2e, 50):>7.3f} / {pct(e2e, 99):>6.3f}"
        )
    for fp32, int8 in (
        ("digits-mnv3", "digits-mnv3-int8"),
        ("efficientnet-lite0", "efficientnet-lite0-int8"),
    ):
        speedup = p50[fp32] / p50[int8]
        print(f"int8 speed-up over fp32, {fp32}: {speedup:.2f}x (p50 OnnxModel.run)")


def bench_evaluation(quick: bool, plot: str | None) -> None:
    settings = RuntimeSettings(intra_op_threads=1)
    images, labels = digits_test_split()
    n = 120 if quick else len(images)
    report = evaluate(
        [
            get_model("digits-mnv3").backend(settings, name="local-fp32"),
            get_model("digits-mnv3-int8").backend(settings, name="local-int8"),
        ],
        list(images[:n]),
        [str(y) for y in labels[:n]],
        dataset=f"digits test split ({n})",
    )
    print()
    print(f"evaluation: {report.dataset}")
    print(report.table())
    if plot:
        print(f"plot: {plot_accuracy_latency(report, plot)}")

    crops: list[ImageInput] = list(photo_crops(12 if quick else 48, split=HELD_OUT))
    report = evaluate(
        [
            get_model("efficientnet-lite0").backend(settings, name="local-fp32"),
            get_model("efficientnet-lite0-int8").backend(settings, name="local-int8"),
        ],
        crops,
        None,
        dataset=(
            f"EfficientNet-Lite0 on {len(crops)} crops of the held-out sample photos "
            "(never seen by the int8 calibration; no ground truth)"
        ),
    )
    print()
    print(f"evaluation: {report.dataset}")
    print(report.table())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--plot", help="write the digits accuracy-vs-latency PNG here")
    args = parser.parse_args()
    bench_latency(args.quick)
    bench_evaluation(args.quick, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
