"""The onnxruntime wrapper: loading, running, predictions, input checks and error translation."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edgetrust.errors import ConfigError, InferenceError, InvalidRequestError
from edgetrust.offload.images import to_batch
from edgetrust.offload.models import (
    SAMPLES_DIR,
    bundled_catalog,
    digit_samples,
    digits_test_split,
    get_model,
    load_backend,
    load_model,
)
from edgetrust.offload.runtime import (
    ExecutionMode,
    GraphOptimization,
    InferenceBackend,
    OnnxBackend,
    OnnxModel,
    OutputKind,
    Prediction,
    RuntimeSettings,
    softmax,
    top_k_indices,
)

#: int8 must agree with fp32 on at least this share of the 360 held-out digits (measured: 1.000).
DIGITS_INT8_AGREEMENT_MIN = 0.99


@pytest.fixture(scope="module")
def digits_fp32() -> OnnxModel:
    return load_model("digits-mnv3")


@pytest.fixture(scope="module")
def digits_int8() -> OnnxModel:
    return load_model("digits-mnv3-int8")


@pytest.fixture(scope="module")
def test_split() -> tuple[np.ndarray, np.ndarray]:
    images, labels = digits_test_split()
    return to_batch(list(images), get_model("digits-mnv3").preprocessing), labels


@pytest.mark.parametrize("name", bundled_catalog().names())
def test_every_bundled_model_loads(name: str) -> None:
    spec = get_model(name)
    model = spec.load()
    assert model.name == name
    assert model.input_shape == spec.input_shape
    assert model.input_shape[0] is None  # dynamic batch
    assert model.sample_shape == spec.preprocessing.sample_shape
    assert model.input_dtype == np.dtype(spec.input_dtype)
    assert model.num_classes == len(spec.labels)
    assert model.sha256 == spec.sha256
    probs = model.run(np.zeros((2, *spec.preprocessing.sample_shape), dtype=np.float32))
    assert probs.shape == (2, len(spec.labels))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["digits-mnv3", "digits-mnv3-int8"])
def test_digit_samples_are_classified_correctly(name: str) -> None:
    backend = load_backend(name)
    samples = digit_samples()
    assert len(samples) == 20
    for sample in samples:
        prediction = backend.classify(sample.path, top_k=3)
        assert prediction.label == sample.label, sample.path.name
        assert prediction.score > 0.5


def test_digits_accuracy_on_the_test_split(
    digits_fp32: OnnxModel, digits_int8: OnnxModel, test_split: tuple[np.ndarray, np.ndarray]
) -> None:
    batch, labels = test_split
    top1_fp32 = digits_fp32.run(batch).argmax(axis=1)
    top1_int8 = digits_int8.run(batch).argmax(axis=1)
    assert np.mean(top1_fp32 == labels) >= 0.98
    assert np.mean(top1_int8 == labels) >= 0.98
    assert np.mean(top1_fp32 == top1_int8) >= DIGITS_INT8_AGREEMENT_MIN


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite0-int8"])
@pytest.mark.parametrize(
    ("photo", "label"),
    [
        ("photo-china.jpg", "palace"),
        ("photo-flower.jpg", "daisy"),
        ("photo-chelsea.jpg", "a cat having a striped coat"),  # held-out (never calibrated on)
        ("photo-camera.jpg", "tripod"),  # held-out, grey
    ],
)
def test_pretrained_imagenet_model_recognises_the_sample_photos(
    name: str, photo: str, label: str
) -> None:
    backend = load_backend(name)
    prediction = backend.classify(SAMPLES_DIR / photo, top_k=5)
    assert prediction.label == label
    assert len(prediction.labels) == 5


def test_predict_returns_sorted_top_k(digits_fp32: OnnxModel) -> None:
    batch = np.zeros((3, 1, 32, 32), dtype=np.float32)
    predictions = digits_fp32.predict(batch, top_k=4, backend="test")
    assert len(predictions) == 3
    for p in predictions:
        assert len(p.indices) == 4
        assert list(p.scores) == sorted(p.scores, reverse=True)
        assert p.labels == tuple(str(i) for i in p.indices)
        assert p.model == "digits-mnv3"
        assert p.backend == "test"
        assert p.inference_ms > 0
        assert p.latency_ms == p.inference_ms


def test_top_k_larger_than_classes_is_clamped(digits_fp32: OnnxModel) -> None:
    (p,) = digits_fp32.predict(np.zeros((1, 1, 32, 32), dtype=np.float32), top_k=50)
    assert sorted(p.indices) == list(range(10))


def test_top_k_below_one_is_rejected(digits_fp32: OnnxModel) -> None:
    with pytest.raises(InvalidRequestError, match="top_k"):
        digits_fp32.predict(np.zeros((1, 1, 32, 32), dtype=np.float32), top_k=0)


def test_wrong_shape_is_an_invalid_request(digits_fp32: OnnxModel) -> None:
    with pytest.raises(InvalidRequestError, match=r"expects shape \(N, 1, 32, 32\)"):
        digits_fp32.run(np.zeros((1, 3, 32, 32), dtype=np.float32))


def test_wrong_rank_is_an_invalid_request(digits_fp32: OnnxModel) -> None:
    with pytest.raises(InvalidRequestError, match="expects shape"):
        digits_fp32.run(np.zeros((1, 32, 32), dtype=np.float32))


def test_wrong_dtype_is_an_invalid_request(digits_fp32: OnnxModel) -> None:
    with pytest.raises(InvalidRequestError, match="expects dtype float32, got float64"):
        digits_fp32.run(np.zeros((1, 1, 32, 32), dtype=np.float64))


def test_uint8_pixels_are_not_silently_cast(digits_fp32: OnnxModel) -> None:
    with pytest.raises(InvalidRequestError, match="expects dtype"):
        digits_fp32.run(np.zeros((1, 1, 32, 32), dtype=np.uint8))


def test_empty_batch_is_an_invalid_request(digits_fp32: OnnxModel) -> None:
    with pytest.raises(InvalidRequestError, match="empty batch"):
        digits_fp32.run(np.zeros((0, 1, 32, 32), dtype=np.float32))


def test_non_array_is_an_invalid_request(digits_fp32: OnnxModel) -> None:
    with pytest.raises(InvalidRequestError, match="numpy array"):
        digits_fp32.run([[0.0]])  # type: ignore[arg-type]


def test_corrupt_model_file_is_an_inference_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07this is not an onnx model" * 10)
    with pytest.raises(InferenceError, match="onnxruntime cannot load model 'broken'"):
        OnnxModel.load(path)


def test_truncated_model_file_is_an_inference_error(tmp_path: Path) -> None:
    data = get_model("digits-mnv3").path.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InferenceError, match="cannot load"):
        OnnxModel.load(path)


def test_missing_model_file_is_an_inference_error(tmp_path: Path) -> None:
    with pytest.raises(InferenceError, match="cannot read model file"):
        OnnxModel.load(tmp_path / "absent.onnx")


def test_hash_mismatch_is_an_inference_error() -> None:
    spec = get_model("digits-mnv3")
    with pytest.raises(InferenceError, match="has SHA-256"):
        OnnxModel.load(spec.path, expected_sha256="00" * 32)


def test_label_count_must_match_the_model() -> None:
    spec = get_model("digits-mnv3")
    with pytest.raises(InferenceError, match="10 classes but 3 labels"):
        OnnxModel.load(spec.path, labels=["a", "b", "c"])


def test_probabilities_output_is_not_softmaxed_again() -> None:
    spec = get_model("digits-mnv3")
    logits_model = OnnxModel.load(spec.path, output_kind=OutputKind.PROBABILITIES)
    batch = np.zeros((1, 1, 32, 32), dtype=np.float32)
    raw = logits_model.run(batch)
    assert not np.isclose(raw.sum(), 1.0)  # the raw logits came through untouched
    np.testing.assert_allclose(softmax(raw), load_model("digits-mnv3").run(batch), rtol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        RuntimeSettings(),
        RuntimeSettings(intra_op_threads=2, inter_op_threads=2),
        RuntimeSettings(execution_mode=ExecutionMode.PARALLEL),
        RuntimeSettings(graph_optimization=GraphOptimization.DISABLED),
        RuntimeSettings(intra_op_threads=0, inter_op_threads=0),
    ],
    ids=["default", "two-threads", "parallel", "no-optimisation", "ort-default-threads"],
)
def test_settings_do_not_change_results(
    settings: RuntimeSettings, test_split: tuple[np.ndarray, np.ndarray]
) -> None:
    batch = test_split[0][:16]
    reference = load_model("digits-mnv3").run(batch)
    model = load_model("digits-mnv3", settings)
    assert model.settings == settings
    np.testing.assert_allclose(model.run(batch), reference, rtol=1e-4, atol=1e-6)


def test_negative_thread_count_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="thread counts"):
        RuntimeSettings(intra_op_threads=-1)


def test_no_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="execution provider"):
        RuntimeSettings(providers=())


def test_unknown_provider_is_a_config_error_not_a_silent_fallback() -> None:
    with pytest.raises(ConfigError, match="NoSuchExecutionProvider not available"):
        load_model("digits-mnv3", RuntimeSettings(providers=("NoSuchExecutionProvider",)))


def test_concurrent_runs_return_each_caller_its_own_result(
    digits_fp32: OnnxModel, test_split: tuple[np.ndarray, np.ndarray]
) -> None:
    batch = test_split[0][:64]
    expected = digits_fp32.run(batch)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for _ in range(5):
                results[i] = digits_fp32.run(batch[i : i + 1])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(64):
        np.testing.assert_allclose(results[i][0], expected[i], rtol=1e-4, atol=1e-6)


def test_onnx_backend_is_an_inference_backend() -> None:
    backend = load_backend("digits-mnv3")
    assert isinstance(backend, InferenceBackend)
    assert backend.name == "local:digits-mnv3"
    sample = digit_samples()[0]
    p = backend.classify(sample.path.read_bytes())
    assert p.backend == "local:digits-mnv3"
    assert p.latency_ms >= p.inference_ms > 0


def test_onnx_backend_classifies_a_batch() -> None:
    backend = load_backend("digits-mnv3-int8")
    samples = digit_samples()
    predictions = backend.classify_batch([s.path for s in samples], top_k=2)
    assert [p.label for p in predictions] == [s.label for s in samples]
    assert len({p.latency_ms for p in predictions}) == 1


def test_onnx_backend_rejects_mismatched_preprocessing() -> None:
    with pytest.raises(InferenceError, match="preprocessing produces"):
        OnnxBackend(load_model("digits-mnv3"), get_model("efficientnet-lite0").preprocessing)


def test_onnx_backend_refuses_an_empty_batch() -> None:
    with pytest.raises(InvalidRequestError, match="no images"):
        load_backend("digits-mnv3").classify_batch([])


def test_prediction_requires_matching_lengths() -> None:
    with pytest.raises(InvalidRequestError, match="as many labels"):
        Prediction(
            labels=("a",),
            indices=(0, 1),
            scores=(0.5,),
            model="m",
            backend="b",
            latency_ms=1.0,
            inference_ms=1.0,
        )


def test_prediction_json_and_timing() -> None:
    p = Prediction(
        labels=("7", "1"),
        indices=(7, 1),
        scores=(0.9, 0.05),
        model="digits-mnv3",
        backend="local",
        latency_ms=2.0,
        inference_ms=1.0,
    )
    q = p.with_timing(latency_ms=5.0, backend="remote")
    assert (q.latency_ms, q.backend, q.inference_ms, q.label, q.index, q.score) == (
        5.0,
        "remote",
        1.0,
        "7",
        7,
        0.9,
    )
    assert p.to_json()["labels"] == ["7", "1"]


def test_softmax_and_top_k_helpers() -> None:
    probs = softmax(np.array([[0.0, 0.0], [1000.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(probs, [[0.5, 0.5], [1.0, 0.0]])
    order = top_k_indices(np.array([[0.2, 0.5, 0.5, 0.1]]), 3)
    assert order.tolist() == [[1, 2, 0]]  # ties go to the lower index


def test_describe_is_json_ready(digits_fp32: OnnxModel) -> None:
    info = digits_fp32.describe()
    assert info["input"] == {"name": "image", "shape": ["N", 1, 32, 32], "dtype": "float32"}
    assert info["classes"] == 10
    assert "digits-mnv3" in repr(digits_fp32)
