"""``edgetrust factory``: the manufacturer's workspace, batch provisioning, endorsement export.

* ``edgetrust factory init DIR`` -- root CA (+ intermediate), ``factory.json``, demo images and
  the default firmware release. With the intermediate (the default), move
  ``DIR/ca/root-key.pem`` offline: nothing here needs it.
* ``edgetrust factory provision --factory DIR --count N --out OUT`` -- N devices in the layout of
  :mod:`edgetrust.onboarding.device`; interrupted runs are completed by running the same command
  again.
* ``edgetrust factory export-endorsements --factory DIR [--out FILE]`` -- the bundle
  ``edgetrust verifier endorse FILE`` imports.

Bad input is one ``error:`` line on stderr and exit 2; a failure on our side exits 3.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import hashes

from edgetrust.cli.reporting import emit_json, exit_code_for, fail
from edgetrust.errors import Error
from edgetrust.onboarding.factory import DEFAULT_ORGANIZATION, FactoryWorkspace
from edgetrust.onboarding.factory_batch import BatchReport, provision_batch
from edgetrust.onboarding.factory_config import DEFAULT_PRODUCT
from edgetrust.onboarding.factory_output import JOURNAL_FILE, device_name, read_journal

_MODES = ("normal", "debug")


@click.group()
def cli() -> None:
    """Factory workspace and batch provisioning."""


# ------------------------------------------------------------------------------------------------
# init
# ------------------------------------------------------------------------------------------------


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--product",
    "products",
    multiple=True,
    help=f"A product this factory makes (repeatable) [{DEFAULT_PRODUCT}].",
)
@click.option(
    "--intermediate/--no-intermediate",
    default=True,
    show_default=True,
    help="Issue DeviceIDs from an intermediate CA, so the root key can go offline.",
)
@click.option("--key-alg", default="p256", show_default=True, help="CA key type: p256 or p384.")
@click.option("--org", default=DEFAULT_ORGANIZATION, show_default=True, help="Manufacturer name.")
@click.option("--force", is_flag=True, help="Replace an existing workspace (its CA keys too).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def init(  # noqa: PLR0917 - click passes options as arguments
    directory: Path,
    products: tuple[str, ...],
    intermediate: bool,
    key_alg: str,
    org: str,
    force: bool,
    as_json: bool,
) -> None:
    """Create a manufacturer workspace in DIRECTORY (keys 0600)."""
    if key_alg not in ("p256", "p384"):
        fail(f"--key-alg must be p256 or p384, got {key_alg!r}")
    try:
        workspace = FactoryWorkspace.create(
            directory,
            products=products or (DEFAULT_PRODUCT,),
            organization=org,
            intermediate=intermediate,
            key_alg=key_alg,
            force=force,
        )
        root = workspace.root_certificate()
        middle = workspace.intermediate_certificate()
    except Error as e:
        fail(e)
    summary: dict[str, Any] = {
        "workspace": str(directory),
        "organization": workspace.config.organization,
        "oemid": workspace.config.oemid.hex(),
        "root": {
            "subject": root.subject.rfc4514_string(),
            "sha256": root.fingerprint(hashes.SHA256()).hex(),
        },
        "intermediate": None if middle is None else middle.subject.rfc4514_string(),
        "products": [
            {"name": p.name, "firmware_version": p.firmware_version}
            for p in workspace.config.products
        ],
    }
    if as_json:
        emit_json(summary)
        return
    click.echo(f"factory workspace {directory}")
    click.echo(f"  root CA        {summary['root']['subject']}  sha256:{summary['root']['sha256']}")
    if middle is not None:
        click.echo(f"  issuing CA     {summary['intermediate']}")
    for product in workspace.config.products:
        layers = ", ".join(x.name for x in product.layers)
        click.echo(f"  product        {product.name} {product.firmware_version} ({layers})")
    click.echo(f"  configuration  {workspace.config_file}")
    if middle is not None:
        click.echo(
            f"the root key {workspace.ca_dir / 'root-key.pem'} is not needed to provision: "
            "keep it offline"
        )


# ------------------------------------------------------------------------------------------------
# provision
# ------------------------------------------------------------------------------------------------


def _assignments(option: str, values: tuple[str, ...]) -> dict[str, str]:
    """``NAME=FILE`` options as a mapping; a bad one is a one-line error (exit 2)."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            fail(f"{option} expects NAME=FILE, got {value!r}")
        name = name.strip()
        if name in out:
            fail(f"{option} names {name!r} twice")
        out[name] = path.strip()
    return out


class _Progress:
    """A progress bar on a terminal; elsewhere one plain line every few seconds."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.last_line = 0.0
        self.started = time.monotonic()
        self.first: int | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.first is None:
            self.first = done
        if self.tty:
            if self.bar is None:
                self.bar = click.progressbar(
                    length=total, label="provisioning", file=sys.stderr, show_pos=True
                )
                self.bar.__enter__()
            self.bar.update(done - self.bar.pos)
            return
        now = time.monotonic()
        if now - self.last_line >= 2.0 or done == total:
            self.last_line = now
            rate = (done - self.first) / max(now - self.started, 1e-9)
            click.echo(
                f"provisioned {done}/{total} devices ({100 * done // total}%), "
                f"{rate:.0f} devices/s",
                err=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@cli.command("provision")
@click.option(
    "--factory",
    "factory_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The factory workspace.",
)
@click.option("--count", required=True, type=int, help="How many devices the batch has.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the device directories go (re-run with the same OUT to resume).",
)
@click.option("--product", help="The product to make [the workspace's first].")
@click.option(
    "--firmware",
    "firmware",
    multiple=True,
    metavar="LAYER=FILE",
    help="Image of a DICE layer instead of the product's default (repeatable).",
)
@click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME=FILE",
    help="Image of a measured component instead of the default (repeatable).",
)
@click.option(
    "--firmware-version",
    help="Release version of these images [the product's]; new images need a new version.",
)
@click.option("--mode", default="normal", show_default=True, help="DICE mode: normal or debug.")
@click.option(
    "--jobs",
    type=int,
    default=lambda: os.cpu_count() or 1,
    show_default="number of CPUs",
    help="Worker processes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def provision(  # noqa: PLR0917 - click passes options as arguments
    factory_dir: Path,
    count: int,
    out: Path,
    product: str | None,
    firmware: tuple[str, ...],
    components: tuple[str, ...],
    firmware_version: str | None,
    mode: str,
    jobs: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Provision a batch of devices (resumable: run the same command again to finish it)."""
    if count <= 0:
        fail(f"--count must be at least 1, got {count}")
    if jobs <= 0:
        fail(f"--jobs must be at least 1, got {jobs}")
    if mode not in _MODES:
        fail(f"--mode must be one of {', '.join(_MODES)}, got {mode!r}")
    layer_files = _assignments("--firmware", firmware)
    component_files = _assignments("--component", components)
    progress = _Progress(enabled=not quiet)
    try:
        workspace = FactoryWorkspace.load(factory_dir)
        report = provision_batch(
            workspace,
            out=out,
            count=count,
            product=product,
            firmware=layer_files,
            components=component_files,
            firmware_version=firmware_version,
            mode=mode,
            jobs=jobs,
            progress=progress,
        )
    except KeyboardInterrupt:
        progress.close()
        done = _done(out, count)
        fail(
            f"interrupted: {done} of {count} devices are done in {out}; "
            "run the same command again to finish the batch",
            130,
        )
    except Error as e:
        progress.close()
        fail(e, exit_code_for(e))
    progress.close()
    if as_json:
        emit_json(report.to_dict())
        return
    _print_report(report, workspace)


def _done(out: Path, count: int) -> int:
    try:
        return len(read_journal(out, count=count))
    except Error:
        return 0


def _print_report(report: BatchReport, workspace: FactoryWorkspace) -> None:
    click.echo(
        f"provisioned {report.provisioned} devices of {report.product} firmware "
        f"{report.firmware_version} in {report.elapsed:.2f} s ({report.rate:.0f} devices/s, "
        f"{report.jobs} job{'s' if report.jobs != 1 else ''})"
    )
    if report.already_done:
        click.echo(f"  resumed: {report.already_done} devices were already done")
    if report.discarded:
        click.echo(f"  discarded {report.discarded} unfinished devices of an interrupted run")
    first, last = device_name(1, report.count), device_name(report.count, report.count)
    click.echo(f"  devices: {report.out}/{first} .. {last} ({report.count} in the batch)")
    click.echo(f"  journal: {report.out / JOURNAL_FILE}")
    if report.release_recorded:
        click.echo(
            f"  new release {report.product} {report.firmware_version} recorded in "
            f"{workspace.releases_dir}: export the endorsements again for the verifiers"
        )


# ------------------------------------------------------------------------------------------------
# export-endorsements
# ------------------------------------------------------------------------------------------------


@cli.command("export-endorsements")
@click.option(
    "--factory",
    "factory_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The factory workspace.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bundle to this file [standard output].",
)
@click.option("--product", "products", multiple=True, help="Only these products (repeatable).")
@click.option(
    "--include-intermediate",
    is_flag=True,
    help="Add the intermediate CA to the trust anchors (for devices that omit it).",
)
def export_endorsements(
    factory_dir: Path, out_file: Path | None, products: tuple[str, ...], include_intermediate: bool
) -> None:
    """Export trust anchors + reference values for `edgetrust verifier endorse FILE`."""
    try:
        workspace = FactoryWorkspace.load(factory_dir)
        bundle = workspace.endorsements(
            products=list(products) or None, include_intermediate=include_intermediate
        )
    except Error as e:
        fail(e)
    text = bundle.to_json()
    if out_file is None:
        click.echo(text, nl=False)
        return
    try:
        out_file.write_text(text, encoding="utf-8")
    except OSError as e:
        fail(f"cannot write {out_file}: {e.strerror or e}")
    versions = [
        f"{p.product} {fw.version}" for p in bundle.reference_values.products for fw in p.firmware
    ]
    click.echo(
        f"wrote {len(bundle.anchors)} trust anchor(s) and reference values for "
        f"{', '.join(versions)} to {out_file}"
    )
