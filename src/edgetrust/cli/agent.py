"""``edgetrust agent``: set up and run the mTLS inference agent.

``edgetrust agent init DIR --verifier-config verifier.toml`` issues the agent's key pair from the
verifier's cluster CA and writes ``DIR/agent.toml`` (see :mod:`edgetrust.offload.setup`).

``edgetrust agent serve [--config FILE] [--listen HOST:PORT]`` loads the configuration (TOML, see
:mod:`edgetrust.offload.config`; ``EDGETRUST_AGENT_*`` variables override it), loads the models,
follows the revocation feed and serves ``edgetrust.v1.Inference`` until SIGINT / SIGTERM, then
stops gracefully and prints its metrics, ``agent stopped {...}`` (:meth:`Agent.metrics`: calls in
progress, streams open / peak / opened / refused and the cap). Refused streams are also warned
about while it runs (stderr, at most once a minute). ``--metrics HOST:PORT`` (or ``[metrics]
listen``, ``EDGETRUST_METRICS_LISTEN``) serves live Prometheus metrics there, announced after the
listening line as ``metrics on http://HOST:PORT/metrics`` (the names:
:mod:`edgetrust.offload.agent_metrics`).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType

import click

from edgetrust.cli.reporting import emit_json, fail
from edgetrust.cli.verifier import METRICS_OPTION
from edgetrust.errors import ConfigError
from edgetrust.offload.agent import Agent
from edgetrust.offload.config import AgentConfig
from edgetrust.offload.models import DEFAULT_MODEL
from edgetrust.offload.setup import init_agent_directory
from edgetrust.onboarding.config import load_config
from edgetrust.onboarding.workspace import load_keys


@click.group()
def cli() -> None:
    """The mTLS inference agent."""


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--verifier-config",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The verifier's verifier.toml: its cluster CA issues the agent's certificate.",
)
@click.option("--listen", default="127.0.0.1:7444", show_default=True, metavar="HOST:PORT")
@click.option("--model", "models", multiple=True, help=f"Model to serve [{DEFAULT_MODEL}].")
@click.option("--dns-name", "dns_names", multiple=True, help="DNS name in the certificate.")
@click.option("--ip", "ips", multiple=True, help="IP address in the certificate [127.0.0.1].")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 825))
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def init(
    *,
    directory: Path,
    verifier_config: Path,
    listen: str,
    models: tuple[str, ...],
    dns_names: tuple[str, ...],
    ips: tuple[str, ...],
    days: int,
    as_json: bool,
) -> None:
    """Create an agent directory: key pair from the cluster CA and agent.toml."""
    config = load_config(verifier_config, env={})
    keys = load_keys(config)
    feed = str(config.feed_listen) if config.feed_listen is not None else "none"
    files = init_agent_directory(
        directory,
        cluster_ca=keys.cluster_ca.issuer,
        cluster_ca_certificates=[keys.cluster_ca_pem],
        listen=listen,
        trust_domain=config.trust_domain,
        feed=feed,
        models=list(models) or [DEFAULT_MODEL],
        dns_names=list(dns_names) or ["localhost"],
        ip_addresses=list(ips) or ["127.0.0.1"],
        lifetime=timedelta(days=days),
    )
    if as_json:
        emit_json(
            {
                "directory": str(files.directory),
                "config": str(files.config),
                "certificate": str(files.certificate),
                "key": str(files.key),
                "cluster_ca": str(files.cluster_ca),
                "subject": files.subject,
                "not_after": files.not_after,
                "revocation_feed": feed,
            }
        )
        return
    click.echo(f"agent directory {files.directory}")
    click.echo(f"  certificate  {files.certificate}  {files.subject} until {files.not_after}")
    click.echo(f"  key          {files.key}  (0600)")
    click.echo(f"  config       {files.config}  (revocation feed: {feed})")
    click.echo(f"run it: edgetrust agent serve --config {files.config}")


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="EDGETRUST_AGENT_CONFIG",
    help="Agent configuration (TOML). [env: EDGETRUST_AGENT_CONFIG]",
)
@click.option("--listen", metavar="HOST:PORT", help="Override agent.listen.")
@METRICS_OPTION
@click.option("--grace", default=5.0, show_default=True, help="Seconds to finish calls on stop.")
@click.option("-v", "--verbose", is_flag=True, help="Log every refusal and revocation.")
def serve(
    config_path: Path | None,
    listen: str | None,
    metrics_listen: str | None,
    grace: float,
    verbose: bool,
) -> None:
    """Serve edgetrust.v1.Inference over mutual TLS until interrupted."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = AgentConfig.load(config_path)
    try:
        if listen is not None:
            config = dataclasses.replace(config, listen=listen)
        if metrics_listen is not None:
            config = dataclasses.replace(config, metrics_listen=metrics_listen)
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
    if agent.metrics_endpoint is not None:
        click.echo(f"metrics on {agent.metrics_endpoint.url}")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        agent.stop(grace)
    click.echo(f"agent stopped {agent.metrics()}")
