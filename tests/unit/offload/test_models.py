"""The model catalog: manifest consistency with the committed files, and manifest rejections."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from edgetrust.errors import ConfigError, InferenceError, InvalidRequestError
from edgetrust.offload.models import (
    BUNDLED_MANIFEST,
    DEFAULT_MODEL,
    HELD_OUT,
    MODELS_DIR,
    SAMPLES_DIR,
    Precision,
    bundled_catalog,
    digit_samples,
    digits_test_split,
    get_model,
    load_catalog,
    photo_crops,
    sample_photos,
)
from edgetrust.offload.runtime import OutputKind

EXPECTED = {"digits-mnv3", "digits-mnv3-int8", "efficientnet-lite0", "efficientnet-lite0-int8"}


def test_bundled_catalog_lists_the_committed_models() -> None:
    catalog = bundled_catalog()
    assert set(catalog.names()) == EXPECTED
    assert DEFAULT_MODEL in catalog
    assert [m.name for m in catalog.available()] == catalog.names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_manifest_matches_the_file(name: str) -> None:
    spec = get_model(name)
    data = spec.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == spec.sha256
    assert len(data) == spec.size
    proto = onnx.load_from_string(data)
    assert proto.opset_import[0].version >= 17
    graph_input = proto.graph.input[0]
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims[1:] == list(spec.input_shape[1:])
    assert isinstance(dims[0], str)  # dynamic batch dimension
    assert spec.output is OutputKind.LOGITS
    assert spec.pretrained


@pytest.mark.parametrize("name", ["digits-mnv3", "digits-mnv3-int8"])
def test_demo_models_are_small(name: str) -> None:
    assert get_model(name).size < 1_000_000


def test_int8_models_name_their_fp32_reference_and_are_quantized() -> None:
    for spec in bundled_catalog():
        if spec.precision is Precision.INT8:
            reference = get_model(spec.reference or "")
            assert reference.precision is Precision.FP32
            assert reference.labels == spec.labels
            assert reference.preprocessing == spec.preprocessing
            ops = {n.op_type for n in onnx.load(str(spec.path)).graph.node}
            assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_recorded_accuracy() -> None:
    assert get_model("digits-mnv3").accuracy["digits_test_top1"] >= 0.98
    assert get_model("digits-mnv3-int8").accuracy["top1_agreement_with_fp32"] >= 0.99


def test_labels() -> None:
    assert get_model("digits-mnv3").labels == tuple(str(d) for d in range(10))
    imagenet = get_model("efficientnet-lite0").labels
    assert len(imagenet) == 1000
    assert imagenet[0] == "tench"


def test_unknown_model_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError, match="unknown model 'resnet-9000'"):
        get_model("resnet-9000")


def test_digit_samples_and_test_split() -> None:
    samples = digit_samples()
    assert sorted(s.label for s in samples) == sorted([str(d) for d in range(10)] * 2)
    assert all(s.path.is_file() and s.index == int(s.label) for s in samples)
    images, labels = digits_test_split()
    assert images.shape == (360, 8, 8)
    assert images.dtype == np.uint8
    assert labels.shape == (360,)
    assert np.bincount(labels).min() >= 35  # stratified


HELD_OUT_PHOTOS = {"chelsea", "rocket", "camera", "gravel", "clock_motion"}


def test_sample_photos_have_split_source_licence_and_hash() -> None:
    photos = sample_photos()
    assert {p.split for p in photos} == {"calibration", HELD_OUT}
    for photo in photos:
        data = photo.path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == photo.sha256
        assert "sha256 " in photo.source
        assert photo.credit
        with Image.open(photo.path) as img:
            assert img.format == "JPEG"
            if photo.split == HELD_OUT:
                assert min(img.size) <= 256
        if photo.split == "calibration":
            assert photo.source.startswith("scikit-learn ")
            assert photo.licence.startswith("CC BY 2.0")
        else:
            assert photo.source.startswith("scikit-image ")
            assert photo.licence.startswith(("CC0 ", "public domain "))
    held_out = sample_photos(HELD_OUT)
    assert {p.path.stem.removeprefix("photo-") for p in held_out} == HELD_OUT_PHOTOS
    assert sum(p.path.stat().st_size for p in held_out) < 300_000


def test_shipped_held_out_photos_are_held_out_in_the_int8_manifest() -> None:
    """Each shipped held-out photo's source is in the int8 model's held-out list, nowhere else."""
    splits = get_model("efficientnet-lite0-int8").produced_by["photos"]
    assert isinstance(splits, dict)
    for photo in sample_photos(HELD_OUT):
        source_hash = photo.source.rsplit("sha256 ", 1)[1].rstrip(")")
        where = {k for k, listed in splits.items() if any(source_hash in x for x in listed)}
        assert where == {HELD_OUT}, photo.path.name
    for photo in sample_photos("calibration"):
        source_hash = photo.source.rsplit("sha256 ", 1)[1].rstrip(")")
        assert any(source_hash in x for x in splits["calibration"])


def test_photo_crops_default_to_the_held_out_photos() -> None:
    held_out = photo_crops(10)
    for a, b in zip(held_out, photo_crops(10, split=HELD_OUT), strict=True):
        np.testing.assert_array_equal(a, b)
    calibration = photo_crops(10, split="calibration")
    assert any(a.shape != b.shape for a, b in zip(held_out, calibration, strict=True))


@pytest.fixture
def samples_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the sample photographs and their index, used by edgetrust."""
    for photo in sample_photos():
        shutil.copy(photo.path, tmp_path / photo.path.name)
    shutil.copy(SAMPLES_DIR / "samples.json", tmp_path / "samples.json")
    monkeypatch.setattr("edgetrust.offload.models.SAMPLES_DIR", tmp_path)
    return tmp_path


def test_a_tampered_sample_photo_is_rejected(samples_copy: Path) -> None:
    path = samples_copy / "photo-chelsea.jpg"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ConfigError, match=r"photo-chelsea\.jpg does not match its SHA-256"):
        photo_crops(3)


def test_a_missing_sample_photo_is_rejected(samples_copy: Path) -> None:
    (samples_copy / "photo-rocket.jpg").unlink()
    with pytest.raises(ConfigError, match=r"cannot read sample photograph .*photo-rocket\.jpg"):
        photo_crops(3)


def test_an_undecodable_sample_photo_is_rejected(samples_copy: Path) -> None:
    index = json.loads((samples_copy / "samples.json").read_text())
    (samples_copy / "photo-camera.jpg").write_bytes(b"not a jpeg")
    for entry in index["photos"]:
        if entry["file"] == "photo-camera.jpg":
            entry["sha256"] = hashlib.sha256(b"not a jpeg").hexdigest()
    (samples_copy / "samples.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match=r"cannot decode sample photograph .*photo-camera"):
        photo_crops(3)


def test_a_photo_entry_without_a_hash_is_rejected(samples_copy: Path) -> None:
    index = json.loads((samples_copy / "samples.json").read_text())
    del index["photos"][-1]["sha256"]
    (samples_copy / "samples.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match="a photograph entry is invalid: KeyError"):
        sample_photos()


def test_no_photo_of_the_split_is_an_error(samples_copy: Path) -> None:
    with pytest.raises(ConfigError, match="no validation sample photographs"):
        photo_crops(3, split="validation")


def test_an_unreadable_sample_index_is_rejected(samples_copy: Path) -> None:
    (samples_copy / "samples.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot read sample index"):
        sample_photos()


# -- another catalog: tampering and malformed manifests ------------------------------------------


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    manifest = json.loads(BUNDLED_MANIFEST.read_text())
    manifest["models"] = [m for m in manifest["models"] if m["name"].startswith("digits")]
    for entry in manifest["models"]:
        shutil.copy(MODELS_DIR / entry["file"], tmp_path / entry["file"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def _write(catalog_dir: Path, mutate: object) -> Path:
    path = catalog_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    mutate(manifest)  # type: ignore[operator]
    path.write_text(json.dumps(manifest))
    return path


def test_a_copied_catalog_loads(catalog_dir: Path) -> None:
    catalog = load_catalog(catalog_dir / "manifest.json")
    assert catalog.names() == ["digits-mnv3", "digits-mnv3-int8"]
    assert catalog.get("digits-mnv3").load().num_classes == 10


def test_tampered_model_file_is_refused(catalog_dir: Path) -> None:
    path = catalog_dir / "digits-mnv3.onnx"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    spec = load_catalog(catalog_dir / "manifest.json").get("digits-mnv3")
    with pytest.raises(InferenceError, match="SHA-256"):
        spec.load()


def test_missing_model_file_is_unavailable(catalog_dir: Path) -> None:
    (catalog_dir / "digits-mnv3-int8.onnx").unlink()
    catalog = load_catalog(catalog_dir / "manifest.json")
    assert [m.name for m in catalog.available()] == ["digits-mnv3"]
    with pytest.raises(InferenceError, match="cannot read model file"):
        catalog.get("digits-mnv3-int8").load()


def test_missing_manifest_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read model manifest"):
        load_catalog(tmp_path / "manifest.json")


def test_manifest_that_is_not_json_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_catalog(tmp_path / "manifest.json")


def test_manifest_of_another_format_is_a_config_error(catalog_dir: Path) -> None:
    path = _write(catalog_dir, lambda m: m.update(format=2))
    with pytest.raises(ConfigError, match="not format 1"):
        load_catalog(path)


def test_manifest_without_models_is_a_config_error(catalog_dir: Path) -> None:
    path = _write(catalog_dir, lambda m: m.pop("models"))
    with pytest.raises(ConfigError, match="no 'models' list"):
        load_catalog(path)


def test_duplicate_model_names_are_a_config_error(catalog_dir: Path) -> None:
    path = _write(catalog_dir, lambda m: m["models"].append(m["models"][0]))
    with pytest.raises(ConfigError, match="twice"):
        load_catalog(path)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.pop("sha256"),
        lambda e: e.update(precision="int4"),
        lambda e: e.update(output="embeddings"),
        lambda e: e.update(accuracy={"top1": "high"}),
        lambda e: e["preprocessing"].update(color="CMYK"),
        lambda e: e.pop("labels"),
        lambda e: e.update(input={"shape": ["N", "one", 32, 32], "dtype": "float32"}),
    ],
    ids=[
        "no-sha256",
        "bad-precision",
        "bad-output",
        "bad-accuracy",
        "bad-color",
        "no-labels",
        "bad-shape",
    ],
)
def test_invalid_entries_are_config_errors(catalog_dir: Path, mutate: object) -> None:
    path = _write(catalog_dir, lambda m: mutate(m["models"][0]))  # type: ignore[operator]
    with pytest.raises(ConfigError, match="entry 'digits-mnv3' is invalid"):
        load_catalog(path)


def test_labels_file_with_wrong_hash_is_a_config_error(catalog_dir: Path) -> None:
    (catalog_dir / "labels.txt").write_text("\n".join(str(d) for d in range(10)))

    def mutate(m: dict[str, list[dict[str, object]]]) -> None:
        entry = m["models"][0]
        entry.pop("labels")
        entry["labels_file"] = "labels.txt"
        entry["labels_sha256"] = "00" * 32

    path = _write(catalog_dir, mutate)
    with pytest.raises(ConfigError, match="does not match its SHA-256"):
        load_catalog(path)


def test_photo_crops_are_deterministic_rgb_squares() -> None:
    first, second = photo_crops(6), photo_crops(6)
    assert len(first) == 6
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.uint8
        assert a.ndim == 3
        assert a.shape[0] == a.shape[1]
        assert a.shape[2] == 3
