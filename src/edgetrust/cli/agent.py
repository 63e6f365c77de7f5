"""``edgetrust agent``: run the mTLS inference agent.

``edgetrust agent serve [--config FILE] [--listen HOST:PORT]`` loads the configuration (TOML, see
:mod:`edgetrust.offload.config`; ``EDGETRUST_AGENT_*`` variables override it), loads the models,
follows the revocation feed and serves ``edgetrust.v1.Inference`` until SIGINT / SIGTERM, then
stops gracefully.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from edgetrust.cli.reporting import fail
from edgetrust.errors import ConfigError
from edgetrust.offload.agent import Agent
from edgetrust.offload.config import AgentConfig


@click.group()
def cli() -> None:
    """The mTLS inference agent."""


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="EDGETRUST_AGENT_CONFIG",
    help="Agent configuration (TOML). [env: EDGETRUST_AGENT_CONFIG]",
)
@click.option("--listen", metavar="HOST:PORT", help="Override agent.listen.")
@click.option("--grace", default=5.0, show_default=True, help="Seconds to finish calls on stop.")
@click.option("-v", "--verbose", is_flag=True, help="Log every refusal and revocation.")
def serve(config_path: Path | None, listen: str | None, grace: float, verbose: bool) -> None:
    """Serve edgetrust.v1.Inference over mutual TLS until interrupted."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = AgentConfig.load(config_path)
    if listen is not None:
        try:
            config = dataclasses.replace(config, listen=listen)
        except ConfigError as e:
            fail(e)
    agent = Agent(config).start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    models = ", ".join(agent.models)
    feed = config.revocation.feed
    click.echo(f"agent listening on {agent.address} (models: {models}; revocations: {feed})")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        agent.stop(grace)
    click.echo("agent stopped")
