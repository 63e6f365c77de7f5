"""``edgetrust demo``: the whole story on one machine, each step explained as it happens.

Factory -> verifier -> onboarding -> agent -> local and offloaded classification -> a tampered
device refused -> a revoked device cut off (see :mod:`edgetrust.cli.demo_story`). Embedded
defaults only: SQLite, 127.0.0.1 with ephemeral ports, the bundled digits model; ``EDGETRUST_*``
variables are ignored. Everything started is stopped at the end and the working directory (a
fresh temporary one unless ``--workdir``) is removed unless ``--keep``.

Exit codes: 0 every step behaved as expected; 1 a step did not (named on stderr, and in the
JSON as ``failed_step``); 2 bad options (e.g. a non-empty ``--workdir``).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click

from edgetrust.cli.demo_state import StepResult
from edgetrust.cli.demo_story import (
    SERVICE_LOG,
    STEPS,
    DemoReport,
    DemoStory,
    files_of,
    remove_tree,
    shown,
    step_lines,
)
from edgetrust.cli.reporting import EXIT_INVALID, emit_json, fail


class _Printer:
    """Narrates on standard output for a person."""

    def step(self, number: int, total: int, title: str, why: str) -> None:
        click.echo()
        click.secho(f"[{number}/{total}] {title}", bold=True)
        for line in textwrap.wrap(why, width=96):
            click.echo(f"  {line}")

    def say(self, text: str) -> None:
        click.echo(f"    {text}")

    def result(self, step: StepResult) -> None:
        if step.ok:
            click.secho(f"  ok ({step.seconds:.2f} s)", fg="green")
        else:
            click.secho(f"  FAILED: {step.problem}", fg="red", err=True)


class _Silent:
    """JSON mode: nothing but the final document on standard output."""

    def step(self, number: int, total: int, title: str, why: str) -> None:
        return

    def say(self, text: str) -> None:
        return

    def result(self, step: StepResult) -> None:
        return


def _workdir(given: Path | None) -> tuple[Path, bool]:
    """The directory to work in, and whether it existed before (then only its content goes)."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="edgetrust-demo-")), False
    if given.exists():
        if not given.is_dir():
            fail(f"--workdir {given} is not a directory")
        if any(given.iterdir()):
            fail(f"--workdir {given} is not empty; give a new or empty directory")
        return given.resolve(), True
    try:
        given.mkdir(parents=True, mode=0o700)
    except OSError as e:
        fail(f"cannot create --workdir {given}: {e.strerror or e}")
    return given.resolve(), False


def _print_summary(report: DemoReport, workdir: Path, keep: bool) -> None:
    total = len(STEPS) + 1
    click.echo()
    click.secho(f"[{total}/{total}] Summary", bold=True)
    if report.ok:
        click.echo("  Only genuine, attested devices got in; the agent served them over mTLS until")
        click.echo("  one was revoked. What was shown:")
    else:
        click.echo("  What was shown before the failure:")
    for sentence in shown(report):
        click.echo(f"    - {sentence}")
    click.echo("  timings:")
    for line in step_lines(report):
        click.echo(f"    {line}")
    click.echo(f"    total   {report.seconds:6.2f} s")
    if keep:
        click.echo(f"  files kept in {workdir}:")
        for what, path in files_of(workdir):
            click.echo(f"    {what:<18} {path}")
    else:
        click.echo("  servers stopped, working directory removed (--keep keeps it)")


@contextlib.contextmanager
def _service_log(path: Path) -> Iterator[None]:
    """Send the in-process servers' log records to ``path`` instead of stderr, so that their
    warnings (e.g. the agent cutting a revoked device's call) do not break into the story."""
    logger = logging.getLogger("edgetrust")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    propagate, level = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = propagate, level
        handler.close()


@click.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Work in this new or empty directory [a fresh temporary directory].",
)
@click.option(
    "--devices",
    type=click.IntRange(1, 50),
    default=3,
    show_default=True,
    help="Devices to onboard (one more is provisioned to be tampered with).",
)
@click.option("--keep", is_flag=True, help="Keep the working directory and print where it is.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report instead of the story.")
def cli(workdir: Path | None, devices: int, keep: bool, as_json: bool) -> None:
    """End-to-end demo on one machine: factory, onboarding, offload, tampering, revocation."""
    root, existed = _workdir(workdir)
    if not as_json:
        click.secho("edgetrust demo", bold=True)
        click.echo(f"  {devices} devices, working directory {root}")
    try:
        with _service_log(root / SERVICE_LOG):
            story = DemoStory(
                workdir=root, devices=devices, narrator=_Silent() if as_json else _Printer()
            )
            report = story.run()
    finally:
        if not keep:
            remove_tree(root, keep_root=existed)
    if as_json:
        data = report.to_json()
        data["workdir"] = str(root)
        data["kept"] = keep
        emit_json(data)
    else:
        _print_summary(report, root, keep)
    failed = report.failed
    if failed is not None:
        click.echo(f"error: demo step {failed.name!r} did not behave: {failed.problem}", err=True)
        raise SystemExit(EXIT_INVALID)
