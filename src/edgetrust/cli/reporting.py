"""How the CLI reports: exit codes, one-line errors, JSON output.

Exit codes (stable, part of the public interface):

* 0 -- success / valid
* 1 -- a verdict was reached and it is negative (invalid evidence, refused onboarding)
* 2 -- unusable input or configuration (:class:`~edgetrust.errors.ConfigError`, malformed files)
* 3 -- our side failed (:class:`~edgetrust.errors.ServiceError`)

No command prints a traceback for an :class:`~edgetrust.errors.Error`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from edgetrust.errors import ConfigError, Error, EvidenceError, ServiceError

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3


def exit_code_for(error: Error) -> int:
    """The exit code for an error that escaped a command."""
    if isinstance(error, ServiceError):
        return EXIT_SERVICE
    if isinstance(error, ConfigError | EvidenceError):
        # Commands that reach a verdict on evidence handle EvidenceError themselves (exit 1);
        # one that escapes means the input could not be used at all.
        return EXIT_USAGE
    return EXIT_SERVICE


def fail(error: Error | str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line error to stderr and exit with ``code``."""
    message = error.message if isinstance(error, Error) else error
    click.echo(f"error: {message}", err=True)
    if isinstance(error, Error) and error.hint:
        click.echo(f"hint: {error.hint}", err=True)
    raise SystemExit(code)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (keys in insertion order)."""
    click.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def run_guarded(command: click.Command, argv: Sequence[str] | None) -> int:
    """Run a click command; turn edgetrust errors into one line and an exit code."""
    try:
        command.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE
    except Error as e:
        click.echo(f"error: {e.message}", err=True)
        if e.hint:
            click.echo(f"hint: {e.hint}", err=True)
        return exit_code_for(e)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return EXIT_OK


def hexbytes(
    ctx: click.Context | None, param: click.Parameter | None, value: str | None
) -> bytes | None:
    """click callback: parse a hex string option into bytes with a clear error."""
    if value is None:
        return None
    text = value.strip().removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        name = param.name if param is not None else "value"
        raise click.BadParameter(f"{name} is not hexadecimal: {value!r}") from None


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
