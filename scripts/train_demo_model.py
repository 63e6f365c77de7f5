#!/usr/bin/env python
"""Train edgetrust's demo classifier and write it, its int8 twin, samples and manifest entries.

The model is a small MobileNetV3-style CNN (depthwise-separable inverted residuals,
squeeze-and-excitation, hard-swish) trained on scikit-learn's digits data set (1,797 real 8x8
handwritten digits that ship inside the scikit-learn wheel: no download). Each 8x8 image is stored
as 8-bit grey (``round(v * 255 / 16)``) and fed through
:func:`edgetrust.offload.images.to_tensor`, the exact preprocessing of the runtime: bilinear
upsampling to 32x32, ``(x/255 - 0.5) / 0.5``.

Outputs (in ``src/edgetrust/offload/``):

* ``models/digits-mnv3.onnx`` -- fp32, opset 17, dynamic batch, output = logits;
* ``models/digits-mnv3-int8.onnx`` -- static int8 quantisation (onnxruntime.quantization, QDQ,
  per-channel weights, MinMax calibration on 512 training images);
* ``samples/digit-*.png`` + ``samples/samples.json`` -- two real test-split digits per class;
* ``samples/digits-test.npz`` -- the whole held-out test split (uint8 images + labels);
* the two entries of ``models/manifest.json`` (other entries are kept).

Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, one thread; running it
twice gives byte-identical ONNX files (``--check`` retrains in memory and compares with the
committed files).

Needs the ``train`` extra: ``.venv/bin/pip install -e '.[train]'`` (torch is not a runtime
dependency).
Run: ``.venv/bin/python scripts/train_demo_model.py [--epochs 60] [--check]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random

import numpy as np
import torch
from onnx_export import MODELS, OPSET, SAMPLES, export_onnx, quantize, run, update_manifest
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from edgetrust.offload.images import ColorMode, Preprocessing, to_tensor

PRODUCER = "edgetrust scripts/train_demo_model.py"
SEED = 20240611
TEST_FRACTION = 0.2
PREPROCESSING = Preprocessing(
    height=32, width=32, color=ColorMode.GRAY, scale=1.0 / 255.0, mean=(0.5,), std=(0.5,)
)
FP32_NAME = "digits-mnv3"
INT8_NAME = "digits-mnv3-int8"
CALIBRATION_IMAGES = 512


# -- model ---------------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3 bneck: 1x1 expand -> depthwise kxk -> [SE] -> 1x1 project (+ residual)."""

    def __init__(
        self, cin: int, expand: int, cout: int, *, kernel: int, stride: int, se: bool, hswish: bool
    ) -> None:
        super().__init__()
        act: type[nn.Module] = nn.Hardswish if hswish else nn.ReLU
        layers: list[nn.Module] = []
        if expand != cin:
            layers += [nn.Conv2d(cin, expand, 1, bias=False), nn.BatchNorm2d(expand), act()]
        layers += [
            nn.Conv2d(
                expand, expand, kernel, stride, kernel // 2, groups=expand, bias=False
            ),  # depthwise
            nn.BatchNorm2d(expand),
            act(),
        ]
        if se:
            layers.append(SqueezeExcite(expand))
        layers += [nn.Conv2d(expand, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class DigitsMobileNetV3(nn.Module):
    """A MobileNetV3-Small-shaped network scaled down for 32x32 grey digits (~40k parameters)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()
        )  # 16x16
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 16, kernel=3, stride=1, se=True, hswish=False),
            InvertedResidual(16, 48, 24, kernel=3, stride=2, se=False, hswish=False),  # 8x8
            InvertedResidual(24, 72, 24, kernel=3, stride=1, se=False, hswish=False),
            InvertedResidual(24, 96, 40, kernel=5, stride=2, se=True, hswish=True),  # 4x4
            InvertedResidual(40, 120, 40, kernel=5, stride=1, se=True, hswish=True),
        )
        self.head = nn.Sequential(
            nn.Conv2d(40, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.Hardswish(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# -- data ----------------------------------------------------------------------------------------


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_images, train_labels, test_images, test_labels), images uint8 (N, 8, 8)."""
    data = load_digits()
    pixels = np.rint(data.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        pixels, labels, test_size=TEST_FRACTION, random_state=0, stratify=labels
    )
    return x_tr, y_tr, x_te, y_te


def tensors(images: np.ndarray) -> np.ndarray:
    """The runtime's own preprocessing, image by image."""
    return np.concatenate([to_tensor(img, PREPROCESSING) for img in images], axis=0)


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 3 pixels (background-padded) of the 32x32 tensors."""
    background = float((0.0 - PREPROCESSING.mean[0]) / PREPROCESSING.std[0])
    padded = nn.functional.pad(batch, (3, 3, 3, 3), value=background)
    n = batch.shape[0]
    dx = torch.randint(0, 7, (n,), generator=generator)
    dy = torch.randint(0, 7, (n,), generator=generator)
    out = torch.empty_like(batch)
    for i in range(n):
        out[i] = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
    return out


# -- training ------------------------------------------------------------------------------------


def seed_everything() -> torch.Generator:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(SEED)
    np.random.seed(SEED)  # legacy global seed, for any library that uses it
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator()
    generator.manual_seed(SEED)
    return generator


def train(x_tr: np.ndarray, y_tr: np.ndarray, epochs: int) -> DigitsMobileNetV3:
    generator = seed_everything()
    model = DigitsMobileNetV3()
    inputs = torch.from_numpy(tensors(x_tr))
    targets = torch.from_numpy(y_tr)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(inputs) + 63) // 64
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        for start in range(0, len(inputs), 64):
            idx = order[start : start + 64]
            batch = augment(inputs[idx], generator)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch), targets[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        if epoch % 10 == 9 or epoch == epochs - 1:
            print(f"  epoch {epoch + 1:3d}  loss {total / len(inputs):.4f}")
    model.eval()
    return model


def accuracy(
    model_bytes: bytes, inputs: np.ndarray, labels: np.ndarray
) -> tuple[float, np.ndarray]:
    predicted = np.argmax(run(model_bytes, inputs), axis=1)
    return float(np.mean(predicted == labels)), predicted


# -- outputs -------------------------------------------------------------------------------------


def write_samples(x_te: np.ndarray, y_te: np.ndarray) -> None:
    SAMPLES.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(SAMPLES / "digits-test.npz", images=x_te, labels=y_te)
    entries = []
    for digit in range(10):
        for n, index in enumerate(np.flatnonzero(y_te == digit)[:2]):
            name = f"digit-{digit}-{n}.png"
            buffer = io.BytesIO()
            Image.fromarray(x_te[index], mode="L").save(buffer, format="PNG", optimize=True)
            (SAMPLES / name).write_bytes(buffer.getvalue())
            entries.append({"file": name, "label": str(digit), "test_index": int(index)})
    index_path = SAMPLES / "samples.json"
    existing = json.loads(index_path.read_text()) if index_path.exists() else {}
    existing["digits"] = entries
    existing.setdefault(
        "provenance",
        "digit-*.png: real 8x8 handwritten digits from scikit-learn's load_digits() test split "
        "(train_test_split test_size=0.2, random_state=0, stratified), 0..16 scaled to 0..255; "
        "written by scripts/train_demo_model.py",
    )
    index_path.write_text(json.dumps(existing, indent=2) + "\n")


def manifest_entry(
    *,
    name: str,
    data: bytes,
    precision: str,
    reference: str | None,
    acc: float,
    agree: float | None,
) -> dict[str, object]:
    import sklearn

    accuracy_fields: dict[str, float] = {"digits_test_top1": round(acc, 4)}
    if agree is not None:
        accuracy_fields["top1_agreement_with_fp32"] = round(agree, 4)
    return {
        "name": name,
        "file": f"{name}.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "precision": precision,
        "reference": reference,
        "pretrained": True,
        "input": {"shape": ["N", *PREPROCESSING.sample_shape], "dtype": "float32"},
        "output": "logits",
        "preprocessing": PREPROCESSING.to_json(),
        "labels": [str(d) for d in range(10)],
        "accuracy": accuracy_fields,
        "description": (
            "MobileNetV3-style CNN (inverted residuals, depthwise convs, SE, hard-swish) on 32x32 "
            "grey digits (white ink on black, as scikit-learn's digits)"
            + ("; static int8 QDQ" if precision == "int8" else "")
        ),
        "produced_by": {
            "script": "scripts/train_demo_model.py",
            "dataset": "scikit-learn load_digits (1797 images), 80/20 stratified split, seed 0",
            "seed": SEED,
            "torch": torch.__version__,
            "onnx_opset": OPSET,
            "scikit_learn": sklearn.__version__,
            "quantization": (
                f"onnxruntime.quantization.quantize_static QDQ, per-channel QInt8 weights, QUInt8 "
                f"activations, MinMax on {CALIBRATION_IMAGES} training images"
                if precision == "int8"
                else None
            ),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--check", action="store_true", help="retrain and compare with the committed files"
    )
    args = parser.parse_args()

    x_tr, y_tr, x_te, y_te = digits()
    print(f"digits: {len(x_tr)} train / {len(x_te)} test images")
    model = train(x_tr, y_tr, args.epochs)
    fp32 = export_onnx(
        model,
        PREPROCESSING.sample_shape,
        producer=PRODUCER,
        doc="MobileNetV3-style CNN trained on scikit-learn digits (32x32 grey); logits",
    )
    calibration = tensors(x_tr[:CALIBRATION_IMAGES])
    int8 = quantize(
        fp32, calibration, producer=PRODUCER, doc="static int8 (QDQ) of digits-mnv3; logits"
    )

    test_inputs = tensors(x_te)
    acc32, pred32 = accuracy(fp32, test_inputs, y_te)
    acc8, pred8 = accuracy(int8, test_inputs, y_te)
    agree = float(np.mean(pred32 == pred8))
    print(f"test accuracy fp32 {acc32:.4f}  int8 {acc8:.4f}  int8/fp32 top-1 agreement {agree:.4f}")
    print(f"sizes: fp32 {len(fp32)} B, int8 {len(int8)} B")

    if args.check:
        ok = True
        for name, data in ((FP32_NAME, fp32), (INT8_NAME, int8)):
            committed = (MODELS / f"{name}.onnx").read_bytes()
            same = committed == data
            ok &= same
            print(f"{name}: {'identical' if same else 'DIFFERENT'} to the committed file")
        return 0 if ok else 1

    MODELS.mkdir(parents=True, exist_ok=True)
    (MODELS / f"{FP32_NAME}.onnx").write_bytes(fp32)
    (MODELS / f"{INT8_NAME}.onnx").write_bytes(int8)
    write_samples(x_te, y_te)
    update_manifest(
        [
            manifest_entry(
                name=FP32_NAME, data=fp32, precision="fp32", reference=None, acc=acc32, agree=None
            ),
            manifest_entry(
                name=INT8_NAME,
                data=int8,
                precision="int8",
                reference=FP32_NAME,
                acc=acc8,
                agree=agree,
            ),
        ],
        first=True,
    )
    print(f"wrote {MODELS}/{{{FP32_NAME},{INT8_NAME}}}.onnx, manifest.json and samples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
