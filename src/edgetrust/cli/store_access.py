"""How the ``edgetrust registry`` commands reach the registry and print what they found.

Every such command takes ``--db URL`` or ``--config FILE`` and ``--json``, opens an *existing*
registry (never creates one), reads or writes through the store, and prints either indented JSON
or lines of text. :func:`store_command` does all of that once: the command's own function gets
the open store and its own options, and returns an :class:`Output`.

Errors: ``--db`` with ``--config`` is a usage error (exit 2); a missing registry or a bad URL is a
:class:`~edgetrust.errors.ConfigError` (exit 2) and a failing database a
:class:`~edgetrust.errors.StoreError` (exit 3), both reported by
:func:`~edgetrust.cli.reporting.run_guarded`; a :class:`~edgetrust.errors.NotFoundError` (no such
device or certificate) is reported here as one line and exit 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from edgetrust.cli.reporting import EXIT_INVALID, emit_json, fail
from edgetrust.errors import NotFoundError
from edgetrust.onboarding.config import registry_url
from edgetrust.onboarding.store import SqlRegistryStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """What a command prints: ``data`` with ``--json``, else ``lines`` (one ``echo`` each)."""

    data: Any
    lines: Sequence[str]


def open_store(db_url: str | None, config_path: Path | None) -> SqlRegistryStore:
    """The existing registry named by ``--db`` or ``--config`` (or the defaults)."""
    if db_url is not None and config_path is not None:
        raise click.UsageError("give either --db or --config, not both")
    return SqlRegistryStore(registry_url(db=db_url, config=config_path), create=False)


def store_command(body: Callable[..., Output]) -> Callable[..., None]:
    """Make ``body(store, **options) -> Output`` the callback of a registry command.

    Adds the ``--db``, ``--config`` and ``--json`` options (after the command's own in
    ``--help``), runs ``body`` with the store open and prints its output once the store is closed.
    """

    @functools.wraps(body)
    def command(
        *, as_json: bool, db_url: str | None, config_path: Path | None, **options: Any
    ) -> None:
        with open_store(db_url, config_path) as store:
            try:
                output = body(store, **options)
            except NotFoundError as e:
                fail(e, EXIT_INVALID)
        if as_json:
            emit_json(output.data)
            return
        for line in output.lines:
            click.echo(line)

    return _database_options(command)


def _database_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Take the database from this verifier.toml ([registry] url).",
    )(command)
    command = click.option(
        "--db",
        "db_url",
        metavar="URL",
        help="Registry database: sqlite:///PATH, postgresql://USER@HOST/DB, or a file path. "
        "[default: $EDGETRUST_DB_URL, else ./verifier.toml's, else ./registry.db]",
    )(command)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)
