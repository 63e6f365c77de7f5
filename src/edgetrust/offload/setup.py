"""Setting up an agent directory: its TLS key pair from the cluster CA and its ``agent.toml``.

``edgetrust agent init DIR --verifier-config verifier.toml`` (and ``edgetrust demo``) write::

    DIR/
      agent.key        P-256 private key, PKCS#8 PEM, mode 0600
      agent.crt        the agent's certificate (serverAuth + clientAuth) from the cluster CA
      cluster-ca.crt   the cluster CA: device client certificates and the verifier chain to it
      agent.toml       the configuration ``edgetrust agent serve --config DIR/agent.toml`` reads

The one key pair serves the Inference port (serverAuth) and follows the verifier's mutual-TLS
revocation feed (clientAuth), so an agent needs no second certificate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from edgetrust.certs.builders import Issuer, build_server_certificate
from edgetrust.certs.keys import KeyAlgorithm, generate_private_key
from edgetrust.certs.loading import certificates_pem, write_private_key
from edgetrust.errors import WorkspaceError
from edgetrust.service.configuration import METRICS_EXAMPLE

__all__ = ["AgentFiles", "init_agent_directory"]

AGENT_KEY = "agent.key"
AGENT_CERT = "agent.crt"
CLUSTER_CA = "cluster-ca.crt"
AGENT_CONFIG = "agent.toml"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFiles:
    """Where :func:`init_agent_directory` wrote the agent's files."""

    directory: Path
    config: Path
    key: Path
    certificate: Path
    cluster_ca: Path
    subject: str
    not_after: str


def _toml_string(value: str) -> str:
    # JSON string escaping is a subset of TOML basic strings.
    return json.dumps(value, ensure_ascii=False)


def init_agent_directory(
    directory: Path,
    *,
    cluster_ca: Issuer,
    cluster_ca_certificates: Sequence[bytes],
    listen: str,
    trust_domain: str,
    feed: str,
    models: Sequence[str],
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    lifetime: timedelta = timedelta(days=30),
    heartbeat_interval_ms: int = 1000,
) -> AgentFiles:
    """Create ``directory`` (new or empty) with a key pair, a certificate and ``agent.toml``.

    ``cluster_ca_certificates`` are PEM blocks of the cluster CA (what devices chain to).
    Raises :class:`~edgetrust.errors.WorkspaceError` when ``directory`` is not new or empty.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise WorkspaceError(f"{directory} exists and is not an empty directory")
    if not models:
        raise WorkspaceError("an agent needs at least one model to serve")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise WorkspaceError(f"cannot create {directory}: {e.strerror}") from e
    key = generate_private_key(KeyAlgorithm.P256)
    certificate = build_server_certificate(
        public_key=key.public_key(),
        issuer=cluster_ca,
        dns_names=list(dns_names),
        ip_addresses=list(ip_addresses),
        lifetime=lifetime,
        client_auth=True,  # the same pair follows the verifier's mutual-TLS revocation feed
    )
    files = AgentFiles(
        directory=directory,
        config=directory / AGENT_CONFIG,
        key=directory / AGENT_KEY,
        certificate=directory / AGENT_CERT,
        cluster_ca=directory / CLUSTER_CA,
        subject=certificate.subject.rfc4514_string(),
        not_after=certificate.not_valid_after_utc.isoformat(),
    )
    write_private_key(files.key, key)
    model_list = ", ".join(_toml_string(m) for m in models)
    config = (
        "# edgetrust agent configuration (edgetrust agent serve --config THIS_FILE)\n"
        "# Every option is described in edgetrust.offload.config.\n"
        "[agent]\n"
        f"listen = {_toml_string(listen)}\n"
        f"trust_domain = {_toml_string(trust_domain)}\n"
        f"models = [{model_list}]\n\n"
        "[tls]\n"
        f"cert = {_toml_string(AGENT_CERT)}\n"
        f"key = {_toml_string(AGENT_KEY)}\n"
        f"client_ca = {_toml_string(CLUSTER_CA)}\n\n"
        "[revocation]\n"
        f"feed = {_toml_string(feed)}\n"
        f"heartbeat_interval_ms = {int(heartbeat_interval_ms)}\n\n"
        + "".join(f"{line}\n" for line in METRICS_EXAMPLE)
    )
    try:
        files.certificate.write_bytes(certificates_pem([certificate]))
        files.cluster_ca.write_bytes(b"".join(cluster_ca_certificates))
        files.config.write_text(config, encoding="utf-8")
    except OSError as e:
        raise WorkspaceError(f"cannot write the agent files in {directory}: {e.strerror}") from e
    return files
