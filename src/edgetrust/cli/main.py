"""Entry point of the ``edgetrust`` command.

Sub-command groups are loaded lazily so that ``edgetrust dice derive`` does not pay for importing
onnxruntime or gRPC. Each group lives in its own module of :mod:`edgetrust.cli` and exposes a
click object named ``cli``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from edgetrust import __version__
from edgetrust.cli.reporting import run_guarded

#: command name -> (module, help). The module must define a click command or group named ``cli``.
_COMMANDS: dict[str, tuple[str, str]] = {
    "dice": ("edgetrust.cli.dice", "Open DICE derivation (CDIs, keys, IDs)."),
    "ca": ("edgetrust.cli.ca", "Manufacturer certificate authority."),
    "certs": ("edgetrust.cli.certs", "Show and verify X.509 / DICE certificates."),
    "evidence": ("edgetrust.cli.evidence", "Make, show and verify EAT / PSA tokens."),
    "factory": ("edgetrust.cli.factory", "Factory workspace and batch provisioning."),
    "verifier": ("edgetrust.cli.verifier", "The verifier service (challenge, attest, certify)."),
    "device": ("edgetrust.cli.device", "A simulated device: boot, attest, onboard."),
    "registry": ("edgetrust.cli.registry", "Inspect the device registry, revoke, audit."),
    "agent": ("edgetrust.cli.agent", "The mTLS inference agent."),
    "classify": ("edgetrust.cli.classify", "Classify images locally or on an agent."),
    "models": ("edgetrust.cli.models", "Bundled and configured models."),
    "demo": ("edgetrust.cli.demo", "End-to-end demo on one machine."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, (mod, _) in _COMMANDS.items() if importlib.util.find_spec(mod))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, help_text = entry
        if importlib.util.find_spec(module_name) is None:
            return None
        module = importlib.import_module(module_name)
        command: Any = module.cli
        if not isinstance(command, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{module_name}.cli is not a click command")
        if not command.help:
            command.help = help_text
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgetrust")
def cli() -> None:
    """edgetrust: device identity, attestation-gated onboarding and inference offload."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_guarded(cli, argv))
