"""What the model scripts share: PyTorch -> ONNX export, static int8 quantisation, running a model.

Used by ``scripts/train_demo_model.py`` and ``scripts/export_imagenet_model.py`` (they import it
as ``onnx_export``: a script's own folder is on ``sys.path``). Both write image classifiers that
the runtime feeds one input ``image`` (N x C x H x W, float32) and that answer ``logits``.

* :func:`export_onnx` -- opset 17, dynamic batch, constant folding, the TorchScript exporter
  (``dynamo=False``: the one that wrote the committed files);
* :func:`quantize` -- onnxruntime.quantization: pre-processing, then static QDQ int8 with
  QInt8 weights (per-channel by default), QUInt8 activations and a calibration method (MinMax by
  default; Entropy, Percentile) on the given inputs;
* :func:`run` -- logits from an ONNX model on CPU, one thread (deterministic);
* :func:`update_manifest` -- replace a script's entries in ``models/manifest.json``.

Needs the ``train`` extra (torch). Byte-for-byte output is part of the contract:
``train_demo_model.py --check`` compares a retrained model with the committed files.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # the edgetrust of this checkout, installed or not

PACKAGE = ROOT / "src" / "edgetrust" / "offload"
MODELS = PACKAGE / "models"
SAMPLES = PACKAGE / "samples"
OPSET = 17
INPUT = "image"
OUTPUT = "logits"


def export_onnx(
    model: torch.nn.Module, sample_shape: tuple[int, ...], *, producer: str, doc: str
) -> bytes:
    """``model`` (in eval mode) as a checked ONNX model with a dynamic batch dimension."""
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.zeros(1, *sample_shape),),
        buffer,
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_axes={INPUT: {0: "N"}, OUTPUT: {0: "N"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name = producer
    proto.doc_string = doc
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class _Calibration(CalibrationDataReader):
    def __init__(self, batch: np.ndarray) -> None:
        self._items = iter([{INPUT: batch[i : i + 1]} for i in range(len(batch))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantize(
    fp32: bytes,
    calibration: np.ndarray,
    *,
    producer: str,
    doc: str,
    per_channel: bool = True,
    method: CalibrationMethod = CalibrationMethod.MinMax,
    extra_options: dict[str, object] | None = None,
    nodes_to_exclude: tuple[str, ...] = (),
) -> bytes:
    """Static int8 (QDQ, QInt8 weights, QUInt8 activations) of ``fp32``, calibrated one input at
    a time; per-channel weights and MinMax calibration unless told otherwise (``extra_options``
    goes to ``quantize_static``, e.g. ``{"CalibPercentile": 99.99}``; ``nodes_to_exclude`` stay
    float).

    The producer name becomes ``"<producer> (onnxruntime.quantization)"``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            _Calibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            extra_options=dict(extra_options or {}),
            nodes_to_exclude=list(nodes_to_exclude),
        )
        proto = onnx.load(str(dst))
    proto.producer_name = f"{producer} (onnxruntime.quantization)"
    proto.doc_string = doc
    return proto.SerializeToString()


def run(model_bytes: bytes, inputs: np.ndarray, *, batch: int | None = None) -> np.ndarray:
    """The logits of ``inputs``: in one call, or ``batch`` inputs at a time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    step = batch or max(len(inputs), 1)
    return np.concatenate(
        [session.run(None, {INPUT: inputs[i : i + step]})[0] for i in range(0, len(inputs), step)]
    )


def update_manifest(entries: list[dict[str, object]], *, first: bool) -> None:
    """Put ``entries`` into ``models/manifest.json`` in place of those with the same names
    (before the others when ``first``, else after them); other entries are kept."""
    path = MODELS / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"format": 1, "models": []}
    names = {str(e["name"]) for e in entries}
    kept = [m for m in manifest["models"] if m["name"] not in names]
    manifest["models"] = entries + kept if first else kept + entries
    path.write_text(json.dumps(manifest, indent=2) + "\n")
