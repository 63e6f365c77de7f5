"""Configuration of the inference agent, from a TOML file and the environment.

Agent (``edgetrust agent serve --config agent.toml``)::

    [agent]
    listen = "127.0.0.1:7444"
    trust_domain = "edgetrust.local"   # SPIFFE trust domain of device certificates
    max_workers = 32                   # gRPC handler threads (a stream holds one while open)
    max_streams = 16                   # streams open at once (< max_workers; default half of
                                       # it); beyond it a stream is refused and the client
                                       # sends that call unary, so unary calls keep the rest
    max_concurrent_rpcs = 256          # beyond this gRPC answers RESOURCE_EXHAUSTED
    max_message_bytes = 4194304        # request size bound (gRPC's and our own check)
    default_top_k = 5
    stream_window = 8                  # requests of a stream read ahead of the handler
    stream_idle_s = 30.0               # a stream without requests for this long is ended (OK)
    catalog = "models/manifest.json"   # optional: another model manifest (default: bundled)
    models = ["digits-mnv3"]           # the catalog entries to serve

    [tls]                              # PEM files; relative paths are relative to this file
    cert = "agent.crt"                 # the agent's certificate chain (cluster CA)
    key = "agent.key"
    client_ca = "cluster-ca.crt"       # client certificates must chain to this

    [runtime]                          # onnxruntime session settings
    intra_op_threads = 1
    inter_op_threads = 1

    [batching]
    enabled = true
    max_batch_size = 8
    max_queue_delay_ms = 0.0           # wait for a fuller batch (0 = batch what is waiting)
    max_queue_size = 64
    workers = 1                        # batches running at once (each uses intra_op_threads)
    inline_when_idle = true            # an idle batcher runs a lone request in the caller thread

    [permissions]
    default = ["*"]                    # models every device may use ("*" = all)
    [permissions.devices]              # per device (UEID hex): the exact set, replacing default
    "00112233" = ["digits-mnv3"]

    [revocation]
    feed = "127.0.0.1:7445"            # the verifier's feed port, "file:PATH" or "none"
    ca = "cluster-ca.crt"              # verifier's CA (default: tls.client_ca)
    cert = "agent-feed.crt"            # client certificate for the feed (default: tls.cert/key)
    key = "agent-feed.key"
    server_name = ""                   # TLS name override for the verifier
    max_staleness_s = 30.0             # a feed silent for longer refuses every call (and
                                       # health says NOT_SERVING)
    heartbeat_interval_ms = 1000

    [metrics]
    listen = "127.0.0.1:9464"          # live Prometheus metrics (GET /metrics); default: off

The verifier's feed port is mutual TLS and checks the clientAuth EKU, so the certificate the
agent presents there needs it: either give ``revocation.cert``/``key`` (any cluster-CA client
certificate that is not a device's), or leave them out and issue the agent's own TLS certificate
with both EKUs (``certs.builders.build_server_certificate(..., client_auth=True)``). A feed
certificate without clientAuth is refused when the agent starts (ConfigError), not at every
handshake.

Environment overrides (agent): ``EDGETRUST_AGENT_LISTEN``, ``EDGETRUST_AGENT_TRUST_DOMAIN``,
``EDGETRUST_AGENT_TLS_CERT``, ``EDGETRUST_AGENT_TLS_KEY``, ``EDGETRUST_AGENT_TLS_CLIENT_CA``,
``EDGETRUST_AGENT_FEED``, ``EDGETRUST_AGENT_MODELS`` (comma separated), ``EDGETRUST_AGENT_CATALOG``,
``EDGETRUST_METRICS_LISTEN`` (``[metrics] listen``).

The client's settings (``[client]`` table, ``EDGETRUST_*`` variables) are
:mod:`edgetrust.offload.client_settings`; their names stay importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetrust.errors import ConfigError, Error
from edgetrust.offload.authz import ModelPermissions
from edgetrust.offload.batching import BatchSettings
from edgetrust.offload.client_settings import BackendChoice, ClientSettings, Transport
from edgetrust.offload.config_values import (
    AGENT_TABLES,
    bool_value,
    check_address,
    float_value,
    int_value,
    only_keys,
    optional_string,
    resolve_path,
    string_list,
    string_value,
    subtable,
)
from edgetrust.offload.runtime import ExecutionMode, GraphOptimization, RuntimeSettings
from edgetrust.service.configuration import DEFAULT_TRUST_DOMAIN, read_toml_file

__all__ = [
    "DEFAULT_AGENT_PORT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_TRUST_DOMAIN",
    "AgentConfig",
    "BackendChoice",
    "ClientSettings",
    "FeedConfig",
    "TlsPaths",
    "Transport",
]

DEFAULT_AGENT_PORT = 7444
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


# ------------------------------------------------------------------------------------------------
# Agent
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsPaths:
    cert: Path
    key: Path
    client_ca: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConfig:
    """How the agent follows revocations. ``feed="none"`` turns revocation off (logged loudly)."""

    feed: str = "none"
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    max_staleness_s: float = 30.0
    heartbeat_interval_ms: int = 1000

    @property
    def required(self) -> bool:
        return self.feed != "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    listen: str = f"127.0.0.1:{DEFAULT_AGENT_PORT}"
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    tls: TlsPaths | None = None
    models: tuple[str, ...] = ("digits-mnv3",)
    catalog: Path | None = None
    max_workers: int = 32
    #: streams open at once; None = :attr:`stream_limit`'s default, half of ``max_workers``
    max_streams: int | None = None
    max_concurrent_rpcs: int = 256
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    default_top_k: int = 5
    stream_window: int = 8
    stream_idle_s: float = 30.0
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    batching_enabled: bool = True
    batching: BatchSettings = field(default_factory=BatchSettings)
    permissions: ModelPermissions = field(default_factory=ModelPermissions)
    revocation: FeedConfig = field(default_factory=FeedConfig)
    #: live Prometheus metrics endpoint (``[metrics] listen``, ``--metrics``); None: off
    metrics_listen: str | None = None

    def __post_init__(self) -> None:
        check_address(self.listen, "agent.listen")
        if self.metrics_listen is not None:
            check_address(self.metrics_listen, "metrics.listen")
        if not self.models:
            raise ConfigError("agent.models must name at least one model")
        if not 1 <= self.max_workers <= 1024:
            raise ConfigError("agent.max_workers must be in 1..1024")
        if self.max_streams is not None and not 0 <= self.max_streams < self.max_workers:
            raise ConfigError(
                f"agent.max_streams ({self.max_streams}) must be in 0..{self.max_workers - 1}, "
                f"below agent.max_workers ({self.max_workers}): every open stream holds a "
                "handler thread, and unary calls need the threads that streams cannot take",
                hint="lower agent.max_streams or raise agent.max_workers",
            )
        if not 1 <= self.max_concurrent_rpcs <= 100_000:
            raise ConfigError("agent.max_concurrent_rpcs must be in 1..100000")
        if not 1024 <= self.max_message_bytes <= 256 * 1024 * 1024:
            raise ConfigError("agent.max_message_bytes must be in 1 KiB..256 MiB")
        if not 1 <= self.default_top_k <= 1000:
            raise ConfigError("agent.default_top_k must be in 1..1000")
        if not 1 <= self.stream_window <= 1024:
            raise ConfigError("agent.stream_window must be in 1..1024")
        if not 0.1 <= self.stream_idle_s <= 3600:
            raise ConfigError("agent.stream_idle_s must be in 0.1..3600 seconds")
        if self.revocation.max_staleness_s <= 0:
            raise ConfigError("revocation.max_staleness_s must be positive")

    @property
    def stream_limit(self) -> int:
        """How many streams may be open at once: ``max_streams``, by default half the threads."""
        return self.max_streams if self.max_streams is not None else self.max_workers // 2

    @classmethod
    def load(
        cls, path: Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> AgentConfig:
        """Read ``path`` (TOML; None = defaults only) and apply the environment overrides."""
        env = os.environ if environ is None else environ
        data = read_toml_file(path) if path is not None else {}
        base = path.parent if path is not None else Path.cwd()
        where = str(path) if path is not None else "agent config"
        only_keys(data, AGENT_TABLES, where)
        agent = subtable(data, "agent", where)
        only_keys(
            agent,
            {
                "listen",
                "trust_domain",
                "max_workers",
                "max_streams",
                "max_concurrent_rpcs",
                "max_message_bytes",
                "default_top_k",
                "stream_window",
                "stream_idle_s",
                "catalog",
                "models",
            },
            f"{where} [agent]",
        )
        try:
            listen = env.get("EDGETRUST_AGENT_LISTEN") or string_value(
                agent, "listen", f"127.0.0.1:{DEFAULT_AGENT_PORT}"
            )
            domain = env.get("EDGETRUST_AGENT_TRUST_DOMAIN") or string_value(
                agent, "trust_domain", DEFAULT_TRUST_DOMAIN
            )
            models_env = env.get("EDGETRUST_AGENT_MODELS")
            models = (
                tuple(m.strip() for m in models_env.split(",") if m.strip())
                if models_env
                else tuple(string_list(agent, "models", ["digits-mnv3"]))
            )
            catalog_text = env.get("EDGETRUST_AGENT_CATALOG") or optional_string(agent, "catalog")
            tls = _tls(subtable(data, "tls", where), base, env, where)
            config = cls(
                listen=listen,
                trust_domain=domain,
                tls=tls,
                models=models,
                catalog=resolve_path(base, catalog_text) if catalog_text else None,
                max_workers=int_value(agent, "max_workers", 32),
                max_streams=int_value(agent, "max_streams", 0) if "max_streams" in agent else None,
                max_concurrent_rpcs=int_value(agent, "max_concurrent_rpcs", 256),
                max_message_bytes=int_value(agent, "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
                default_top_k=int_value(agent, "default_top_k", 5),
                stream_window=int_value(agent, "stream_window", 8),
                stream_idle_s=float_value(agent, "stream_idle_s", 30.0),
                runtime=_runtime(subtable(data, "runtime", where), where),
                batching_enabled=bool_value(subtable(data, "batching", where), "enabled", True),
                batching=_batching(subtable(data, "batching", where), where),
                permissions=_permissions(subtable(data, "permissions", where), where),
                revocation=_feed(subtable(data, "revocation", where), base, env, where),
                metrics_listen=_metrics_listen(subtable(data, "metrics", where), env, where),
            )
        except ConfigError:
            raise
        except Error as e:
            raise ConfigError(f"{where}: {e.message}") from e
        return config


def _metrics_listen(table: dict[str, Any], env: Mapping[str, str], where: str) -> str | None:
    only_keys(table, {"listen"}, f"{where} [metrics]")
    return env.get("EDGETRUST_METRICS_LISTEN") or optional_string(table, "listen") or None


def _tls(table: dict[str, Any], base: Path, env: Mapping[str, str], where: str) -> TlsPaths | None:
    only_keys(table, {"cert", "key", "client_ca"}, f"{where} [tls]")
    values = {
        name: env.get(f"EDGETRUST_AGENT_TLS_{name.upper()}") or optional_string(table, name)
        for name in ("cert", "key", "client_ca")
    }
    if not any(values.values()):
        return None
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise ConfigError(f"{where} [tls]: missing {', '.join(missing)}")
    return TlsPaths(
        cert=resolve_path(base, values["cert"] or ""),
        key=resolve_path(base, values["key"] or ""),
        client_ca=resolve_path(base, values["client_ca"] or ""),
    )


def _runtime(table: dict[str, Any], where: str) -> RuntimeSettings:
    only_keys(
        table,
        {"intra_op_threads", "inter_op_threads", "execution_mode", "graph_optimization"},
        f"{where} [runtime]",
    )
    try:
        return RuntimeSettings(
            intra_op_threads=int_value(table, "intra_op_threads", 1),
            inter_op_threads=int_value(table, "inter_op_threads", 1),
            execution_mode=ExecutionMode(string_value(table, "execution_mode", "sequential")),
            graph_optimization=GraphOptimization(string_value(table, "graph_optimization", "all")),
        )
    except ValueError as e:
        raise ConfigError(f"{where} [runtime]: {e}") from e


def _batching(table: dict[str, Any], where: str) -> BatchSettings:
    only_keys(
        table,
        {
            "enabled",
            "max_batch_size",
            "max_queue_delay_ms",
            "max_queue_size",
            "workers",
            "early_dispatch",
            "inline_when_idle",
        },
        f"{where} [batching]",
    )
    return BatchSettings(
        max_batch_size=int_value(table, "max_batch_size", 8),
        max_queue_delay_ms=float_value(table, "max_queue_delay_ms", 0.0),
        max_queue_size=int_value(table, "max_queue_size", 64),
        workers=int_value(table, "workers", 1),
        early_dispatch=bool_value(table, "early_dispatch", True),
        inline_when_idle=bool_value(table, "inline_when_idle", True),
    )


def _permissions(table: dict[str, Any], where: str) -> ModelPermissions:
    only_keys(table, {"default", "devices"}, f"{where} [permissions]")
    devices_raw = table.get("devices", {})
    if not isinstance(devices_raw, dict):
        raise ConfigError(f"{where} [permissions.devices] must be a table")
    devices: dict[str, list[str]] = {}
    for ueid, models in devices_raw.items():
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"{where} [permissions.devices] {ueid}: a list of model names")
        devices[ueid] = models
    return ModelPermissions.from_mapping(
        default=string_list(table, "default", ["*"]), devices=devices
    )


def _feed(table: dict[str, Any], base: Path, env: Mapping[str, str], where: str) -> FeedConfig:
    only_keys(
        table,
        {"feed", "ca", "cert", "key", "server_name", "max_staleness_s", "heartbeat_interval_ms"},
        f"{where} [revocation]",
    )
    feed = env.get("EDGETRUST_AGENT_FEED") or string_value(table, "feed", "none")
    if feed.startswith("file:") and not Path(feed.removeprefix("file:")).is_absolute():
        feed = "file:" + str(base / feed.removeprefix("file:"))

    def opt_path(name: str) -> Path | None:
        text = optional_string(table, name)
        return resolve_path(base, text) if text else None

    heartbeat = int_value(table, "heartbeat_interval_ms", 1000)
    if not 100 <= heartbeat <= 60_000:
        raise ConfigError(f"{where} [revocation] heartbeat_interval_ms must be in 100..60000")
    return FeedConfig(
        feed=feed,
        ca=opt_path("ca"),
        cert=opt_path("cert"),
        key=opt_path("key"),
        server_name=optional_string(table, "server_name") or None,
        max_staleness_s=float_value(table, "max_staleness_s", 30.0),
        heartbeat_interval_ms=heartbeat,
    )
