"""``edgetrust classify IMAGE...``: classify images with the configured backend.

The backend comes from the configuration (``EDGETRUST_BACKEND``, ``EDGETRUST_AGENT``,
``EDGETRUST_CERT`` / ``_KEY`` / ``_CA`` or the ``[client]`` table of ``EDGETRUST_CONFIG``); the
options below override it for one run. Exit codes: 0 every image classified; 1 the agent refused
this device (revoked, not permitted); 2 bad input or configuration; 3 the agent or runtime failed.
"""

from __future__ import annotations

from pathlib import Path

import click

from edgetrust.cli.reporting import EXIT_INVALID, emit_json, fail
from edgetrust.errors import PermissionDeniedError, RevokedError
from edgetrust.offload.client import Classifier


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--backend",
    type=click.Choice(["auto", "local", "remote"]),
    help="Where to classify. [env: EDGETRUST_BACKEND, default auto]",
)
@click.option("--model", help="Model name. [env: EDGETRUST_MODEL, default digits-mnv3]")
@click.option("--top-k", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--agent", metavar="HOST:PORT", help="The agent. [env: EDGETRUST_AGENT]")
@click.option("--cert", type=click.Path(path_type=Path), help="Device certificate (PEM).")
@click.option("--key", type=click.Path(path_type=Path), help="Device key (PEM).")
@click.option("--ca", type=click.Path(path_type=Path), help="Cluster CA certificate (PEM).")
@click.option("--timeout", type=float, help="Seconds per call. [env: EDGETRUST_TIMEOUT]")
@click.option("--no-fallback", is_flag=True, help="Fail instead of classifying locally.")
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), help="Client config (TOML)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cli(  # noqa: PLR0917 - click passes options as arguments
    images: tuple[Path, ...],
    backend: str | None,
    model: str | None,
    top_k: int,
    agent: str | None,
    cert: Path | None,
    key: Path | None,
    ca: Path | None,
    timeout: float | None,
    no_fallback: bool,
    config: Path | None,
    as_json: bool,
) -> None:
    """Classify images locally or on an agent (one API, chosen by configuration)."""
    results: list[dict[str, object]] = []
    with Classifier(
        model,
        backend,
        agent=agent,
        cert=cert,
        key=key,
        ca=ca,
        timeout=timeout,
        fallback=False if no_fallback else None,
        config=config,
    ) as classifier:
        for image in images:
            try:
                prediction = classifier.classify(image, top_k=top_k)
            except (RevokedError, PermissionDeniedError) as e:
                fail(e, EXIT_INVALID)
            if as_json:
                results.append({"image": str(image), **prediction.to_json()})
                continue
            ranked = ", ".join(
                f"{label} ({score:.3f})"
                for label, score in zip(prediction.labels, prediction.scores, strict=True)
            )
            click.echo(f"{image}: {ranked}  [{prediction.backend}, {prediction.latency_ms:.1f} ms]")
    if as_json:
        emit_json({"predictions": results})
