"""``edgetrust models``: the bundled (or a configured) model catalog, and its evaluation.

* ``edgetrust models list [--json]`` -- name, file, SHA-256, input, classes, size, accuracy.
* ``edgetrust models eval [--model NAME] [--json] [--plot FILE] [--remote]`` -- the fp32 model
  against its int8 variant (and, with ``--remote``, against the agent through the device's
  operational certificate) on the digits test split (digit models) or on crops of the held-out
  sample photographs, which the int8 model's calibration never saw (ImageNet models, no ground
  truth: agreement metrics only).
"""

from __future__ import annotations

from pathlib import Path

import click

from edgetrust.cli.reporting import emit_json, fail
from edgetrust.errors import Error
from edgetrust.offload.evaluation import evaluate, plot_accuracy_latency
from edgetrust.offload.images import ImageInput
from edgetrust.offload.models import (
    DEFAULT_MODEL,
    HELD_OUT,
    Catalog,
    ModelSpec,
    Precision,
    bundled_catalog,
    digits_test_split,
    load_catalog,
    photo_crops,
    sample_photos,
)
from edgetrust.offload.runtime import InferenceBackend, RuntimeSettings

_DIGIT_LABELS = tuple(str(d) for d in range(10))
#: Crops of the held-out photographs scored by default (cycled: 50 per photograph for 5; with
#: fewer, the top-1 agreement moves by several points from one seed to another).
_PHOTO_CROPS = 250


def _catalog(path: Path | None) -> Catalog:
    return load_catalog(path) if path is not None else bundled_catalog()


@click.group()
def cli() -> None:
    """Bundled and configured models."""


@cli.command("list")
@click.option("--catalog", type=click.Path(path_type=Path), help="A model manifest.json.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_models(catalog: Path | None, as_json: bool) -> None:
    """List the models of the catalog with their hashes and recorded accuracy."""
    try:
        entries = list(_catalog(catalog))
    except Error as e:
        fail(e)
    if as_json:
        emit_json({"models": [m.to_json() for m in entries]})
        return
    click.echo(
        f"{'name':<24} {'prec':<5} {'input':<18} {'classes':>7} {'size':>9}  "
        f"{'sha256':<16}  accuracy"
    )
    for m in entries:
        shape = "x".join("N" if d is None else str(d) for d in m.input_shape)
        size = f"{m.size / 1024:.0f} KiB" if m.size < 1024 * 1024 else f"{m.size / 2**20:.1f} MiB"
        acc = ", ".join(f"{k}={v:g}" for k, v in m.accuracy.items()) or "-"
        missing = "" if m.available else "  (file missing)"
        click.echo(
            f"{m.name:<24} {m.precision!s:<5} {shape + ' ' + m.input_dtype:<18} "
            f"{len(m.labels):>7} {size:>9}  {m.sha256[:16]}  {acc}{missing}"
        )


@cli.command("eval")
@click.option(
    "--model", "model_name", default=DEFAULT_MODEL, show_default=True, help="fp32 reference model."
)
@click.option("--int8", "int8_name", help="The int8 model (default: the catalog's int8 variant).")
@click.option("--catalog", type=click.Path(path_type=Path), help="A model manifest.json.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images.")
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="onnxruntime intra-op threads (0 = onnxruntime's default).",
)
@click.option(
    "--remote", is_flag=True, help="Also evaluate the agent (EDGETRUST_AGENT/... or --config)."
)
@click.option("--config", type=click.Path(path_type=Path), help="Client config file (--remote).")
@click.option("--plot", type=click.Path(path_type=Path), help="Write accuracy vs latency PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_models(  # noqa: PLR0917 - click passes options positionally
    model_name: str,
    int8_name: str | None,
    catalog: Path | None,
    limit: int | None,
    threads: int,
    remote: bool,
    config: Path | None,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Evaluate fp32 vs int8 (and optionally the agent): latency, accuracy, agreement."""
    try:
        cat = _catalog(catalog)
        reference = cat.get(model_name)
        quantized = cat.get(int8_name) if int8_name else _int8_variant(cat, reference)
        settings = RuntimeSettings(intra_op_threads=threads)
        backends: list[InferenceBackend] = [reference.backend(settings, name="local-fp32")]
        if quantized is not None:
            backends.append(quantized.backend(settings, name="local-int8"))
        if remote:
            backends.append(_remote_backend(reference.name, config))
        images, labels, dataset, split = _dataset(reference, limit)
        report = evaluate(backends, images, labels, dataset=dataset, split=split)
        if plot is not None:
            plot_accuracy_latency(report, plot)
    except Error as e:
        fail(e)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(f"dataset: {dataset} ({len(images)} images, one at a time)")
        click.echo(report.table())
        if plot is not None:
            click.echo(f"plot: {plot}")


def _int8_variant(catalog: Catalog, reference: ModelSpec) -> ModelSpec | None:
    for spec in catalog:
        if spec.precision is Precision.INT8 and spec.reference == reference.name:
            return spec
    return None


def _remote_backend(model: str, config: Path | None) -> InferenceBackend:
    """The agent, configured like the client (environment or config file); no local fallback."""
    from edgetrust.offload.client import Classifier  # noqa: PLC0415 - grpc only when asked

    classifier = Classifier(model=model, backend="remote", fallback=False, config=config)
    remote = classifier.remote
    if remote is None:
        fail("--remote needs an agent: set EDGETRUST_AGENT or the [client] table of --config")
    remote.wait_ready()
    return remote


def _dataset(
    spec: ModelSpec, limit: int | None
) -> tuple[list[ImageInput], list[str] | None, str, str]:
    """The images, their labels (if any), a description and the split they come from."""
    if spec.labels == _DIGIT_LABELS:
        images, labels = digits_test_split()
        n = limit or len(images)
        return list(images[:n]), [str(y) for y in labels[:n]], "digits test split", "test"
    crops: list[ImageInput] = list(photo_crops(limit or _PHOTO_CROPS, split=HELD_OUT))
    names = ", ".join(p.path.stem.removeprefix("photo-") for p in sample_photos(HELD_OUT))
    dataset = (
        f"crops of the held-out photographs ({names}), never seen by the int8 model's "
        "calibration; no ground truth"
    )
    return crops, None, dataset, HELD_OUT
