"""``edgetrust verifier``: create a verifier directory, import endorsements, serve.

* ``edgetrust verifier init DIR`` -- cluster CA, EAR signing key, TLS server certificate,
  ``verifier.toml`` and an empty registry (see :mod:`edgetrust.onboarding.workspace`).
* ``edgetrust verifier endorse FILE`` -- import a factory's endorsement bundle (trust anchors +
  reference values) into the registry; one endorsement per product (a newer bundle for a product
  replaces its previous one).
* ``edgetrust verifier serve [--config FILE] [--listen HOST:PORT] [--processes N]`` -- serve
  ``edgetrust.v1.Verifier`` (and the revocation feed) until SIGINT / SIGTERM, then stop
  gracefully. The first line on stdout names the bound addresses (``--listen 127.0.0.1:0`` picks a
  free port); it is printed once every process serves. ``--processes N`` runs N verifier
  processes on the same ports (see :mod:`edgetrust.onboarding.verifier_processes`); one of them
  dying stops the verifier with exit code 3. The last line is ``verifier stopped {metrics}``
  (added up over the processes). ``--metrics HOST:PORT`` (or ``[metrics] listen``,
  ``EDGETRUST_METRICS_LISTEN``) serves live Prometheus metrics there, announced on the next line
  as ``metrics on http://HOST:PORT/metrics``; with ``--processes N`` the parent serves the sum
  over its processes (see :mod:`edgetrust.onboarding.verifier_metrics` for the names).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import click

from edgetrust.attest.reference import EndorsementBundle, ReferenceValues
from edgetrust.cli.reporting import EXIT_SERVICE, emit_json, fail
from edgetrust.errors import ConfigError, ServiceError
from edgetrust.onboarding.config import (
    CONFIG_FILE,
    DEFAULT_FEED_LISTEN,
    DEFAULT_LISTEN,
    DEFAULT_TRUST_DOMAIN,
    ENV_CONFIG,
    MAX_PROCESSES,
    VerifierConfig,
    load_config,
    parse_listen,
)
from edgetrust.onboarding.records import Endorsement
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.verifier_processes import (
    VerifierProcesses,
    metrics_line,
    open_verifier,
)
from edgetrust.onboarding.workspace import init_workspace, write_config
from edgetrust.service.metrics import MetricsEndpoint

_CONFIG_HELP = "Verifier configuration (verifier.toml). [env: EDGETRUST_VERIFIER_CONFIG]"

#: ``--metrics HOST:PORT`` of ``verifier serve`` and ``agent serve`` (parameter ``metrics_listen``)
METRICS_OPTION = click.option(
    "--metrics",
    "metrics_listen",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics; overrides [metrics] listen "
    "[env: EDGETRUST_METRICS_LISTEN; default off].",
)


@click.group()
def cli() -> None:
    """The verifier service (challenge, attest, certify)."""


def _config(path: Path | None) -> VerifierConfig:
    """--config, else $EDGETRUST_VERIFIER_CONFIG, else ./verifier.toml (never bare defaults)."""
    if path is None and not os.environ.get(ENV_CONFIG):
        path = Path(CONFIG_FILE)
        if not path.exists():
            fail(
                ConfigError(
                    "no --config given and no ./verifier.toml",
                    hint="edgetrust verifier init DIR, then --config DIR/verifier.toml",
                )
            )
    return load_config(path)


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--trust-domain", default=DEFAULT_TRUST_DOMAIN, show_default=True)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT")
@click.option(
    "--feed-listen",
    default=DEFAULT_FEED_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help='Revocation feed port (mTLS); "" turns it off.',
)
@click.option("--server-name", multiple=True, help="Extra DNS name in the server certificate.")
@click.option("--server-ip", multiple=True, help="Extra IP address in the server certificate.")
@click.option("--lifetime", default=3600, show_default=True, help="Certificate lifetime, seconds.")
@click.option("--database", default="registry.db", show_default=True, help="Path or URL.")
@click.option("--json", "as_json", is_flag=True, help="Print what was created as JSON.")
def init(  # noqa: PLR0917 - click passes options positionally
    directory: Path,
    trust_domain: str,
    listen: str,
    feed_listen: str,
    server_name: tuple[str, ...],
    server_ip: tuple[str, ...],
    lifetime: int,
    database: str,
    as_json: bool,
) -> None:
    """Create a verifier directory: cluster CA, EAR key, server certificate, config, registry."""
    workspace = init_workspace(directory, server_names=server_name, server_addresses=server_ip)
    config_file = write_config(
        workspace,
        listen=listen,
        feed_listen=feed_listen or None,
        trust_domain=trust_domain,
        certificate_lifetime=timedelta(seconds=lifetime),
        database=database,
    )
    config = load_config(config_file)
    SqlRegistryStore(
        config.database_url, create=True, sqlite_synchronous=config.sqlite_synchronous
    ).close()
    report = {
        "directory": str(workspace.root),
        "config": str(config_file),
        "cluster_ca": str(workspace.cluster_ca_file),
        "ear_public_key": str(workspace.ear_public_file),
        "registry": config.database_url,
        "listen": str(config.listen),
        "feed_listen": str(config.feed_listen) if config.feed_listen else None,
        "trust_domain": config.trust_domain,
    }
    if as_json:
        emit_json(report)
        return
    click.echo(f"verifier directory {workspace.root}")
    click.echo(f"  config      {config_file}")
    click.echo(f"  cluster CA  {workspace.cluster_ca_file}  (give it to devices: --ca)")
    click.echo(f"  registry    {config.database_url}")


@cli.command()
@click.argument("bundle_file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), envvar="EDGETRUST_VERIFIER_CONFIG",
    help=_CONFIG_HELP,
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
def endorse(bundle_file: Path, config_path: Path | None, as_json: bool) -> None:
    """Import an endorsement bundle (trust anchors + reference values) into the registry."""
    bundle = EndorsementBundle.load(bundle_file)
    config = _config(config_path)
    now = datetime.now(UTC)
    imported = []
    with SqlRegistryStore(
        config.database_url, create=True, sqlite_synchronous=config.sqlite_synchronous
    ) as store:
        for product in bundle.reference_values.products:
            store.put_endorsement(
                Endorsement(
                    product=product.product,
                    firmware_version="",
                    document=ReferenceValues(products=(product,)).to_json(),
                    trust_anchors_pem=bundle.anchors_pem,
                ),
                actor="cli:verifier endorse",
                now=now,
            )
            imported.append(
                {"product": product.product, "firmware": [f.version for f in product.firmware]}
            )
    if as_json:
        emit_json({"registry": config.database_url, "imported": imported})
        return
    for item in imported:
        versions = ", ".join(item["firmware"])
        click.echo(f"endorsed {item['product']} (firmware {versions})")


@cli.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), envvar="EDGETRUST_VERIFIER_CONFIG",
    help=_CONFIG_HELP,
)  # fmt: skip
@click.option("--listen", metavar="HOST:PORT", help="Override verifier.listen.")
@click.option(
    "--feed-listen", metavar="HOST:PORT", help='Override verifier.feed_listen ("" = off).'
)
@click.option(
    "--processes",
    type=click.IntRange(1, MAX_PROCESSES),
    help="Verifier processes sharing the ports (SO_REUSEPORT); overrides verifier.processes "
    "[env: EDGETRUST_VERIFIER_PROCESSES; default 1].",
)
@METRICS_OPTION
@click.option("--grace", default=5.0, show_default=True, help="Seconds to finish calls on stop.")
@click.option("-v", "--verbose", is_flag=True, help="Log one line per attestation.")
def serve(  # noqa: PLR0917 - click passes options positionally
    config_path: Path | None,
    listen: str | None,
    feed_listen: str | None,
    processes: int | None,
    metrics_listen: str | None,
    grace: float,
    verbose: bool,
) -> None:
    """Serve edgetrust.v1.Verifier (TLS) and the revocation feed (mTLS) until interrupted."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = _config(config_path)
    try:
        if listen is not None:
            config = dataclasses.replace(config, listen=parse_listen(listen, "--listen"))
        if feed_listen is not None:
            feed = parse_listen(feed_listen, "--feed-listen") if feed_listen else None
            config = dataclasses.replace(config, feed_listen=feed)
        if metrics_listen is not None:
            config = dataclasses.replace(
                config, metrics_listen=parse_listen(metrics_listen, "--metrics")
            )
    except ConfigError as e:
        fail(e)
    if processes is not None:
        config = dataclasses.replace(config, processes=processes)
    if config.processes > 1:
        _serve_processes(config, grace=grace, log_level=level)
        return
    running = open_verifier(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    server = running.server
    feed_text = f"; revocation feed {server.feed_address}" if server.feed_address else ""
    click.echo(f"verifier listening on {server.address}{feed_text}")
    _announce_metrics(server.metrics_endpoint)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        metrics = running.stop(grace)
    click.echo(metrics_line(metrics))


def _serve_processes(config: VerifierConfig, *, grace: float, log_level: int) -> None:
    """``serve`` with ``config.processes`` processes: announced once all serve; a process that
    dies stops the verifier with exit code 3 (see onboarding.verifier_processes)."""
    group = VerifierProcesses(config, config.processes, grace=grace, log_level=log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        group.start()
        feed_text = f"; revocation feed {group.feed_address}" if group.feed_address else ""
        click.echo(f"verifier listening on {group.address}{feed_text}")
        _announce_metrics(group.metrics_endpoint)
        try:
            group.supervise(stop)
        except ServiceError as e:
            group.stop()
            fail(e, EXIT_SERVICE)
        metrics = group.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo(metrics_line(metrics))


def _announce_metrics(endpoint: MetricsEndpoint | None) -> None:
    """The metrics line (after the listening line), then flush: scripts wait for these lines."""
    if endpoint is not None:
        click.echo(f"metrics on {endpoint.url}")
    sys.stdout.flush()
