"""Configuration of the inference agent and of the client, from TOML files and the environment.

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

The verifier's feed port is mutual TLS and checks the clientAuth EKU, so the certificate the
agent presents there needs it: either give ``revocation.cert``/``key`` (any cluster-CA client
certificate that is not a device's), or leave them out and issue the agent's own TLS certificate
with both EKUs (``certs.builders.build_server_certificate(..., client_auth=True)``). A feed
certificate without clientAuth is refused when the agent starts (ConfigError), not at every
handshake.

Environment overrides (agent): ``EDGETRUST_AGENT_LISTEN``, ``EDGETRUST_AGENT_TRUST_DOMAIN``,
``EDGETRUST_AGENT_TLS_CERT``, ``EDGETRUST_AGENT_TLS_KEY``, ``EDGETRUST_AGENT_TLS_CLIENT_CA``,
``EDGETRUST_AGENT_FEED``, ``EDGETRUST_AGENT_MODELS`` (comma separated), ``EDGETRUST_AGENT_CATALOG``.

Client (:class:`~edgetrust.offload.client.Classifier`): keyword arguments, then the environment,
then the file named by ``EDGETRUST_CONFIG`` (``[client]`` table), then defaults:
``EDGETRUST_BACKEND`` (auto | local | remote), ``EDGETRUST_AGENT`` (host:port),
``EDGETRUST_CERT``, ``EDGETRUST_KEY``, ``EDGETRUST_CA``, ``EDGETRUST_SERVER_NAME``,
``EDGETRUST_TIMEOUT`` (seconds), ``EDGETRUST_RETRIES``, ``EDGETRUST_FALLBACK`` (1/0),
``EDGETRUST_MODEL``, ``EDGETRUST_CATALOG``, ``EDGETRUST_TRANSPORT`` (stream | unary: how calls
travel to the agent; see :class:`Transport`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgetrust.errors import ConfigError, Error
from edgetrust.offload.authz import ModelPermissions
from edgetrust.offload.batching import BatchSettings
from edgetrust.offload.runtime import ExecutionMode, GraphOptimization, RuntimeSettings

DEFAULT_AGENT_PORT = 7444
DEFAULT_TRUST_DOMAIN = "edgetrust.local"
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

    def __post_init__(self) -> None:
        _check_address(self.listen, "agent.listen")
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
        data = _read_toml(path) if path is not None else {}
        base = path.parent if path is not None else Path.cwd()
        where = str(path) if path is not None else "agent config"
        _only(data, {"agent", "tls", "runtime", "batching", "permissions", "revocation"}, where)
        agent = _table(data, "agent", where)
        _only(
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
            listen = env.get("EDGETRUST_AGENT_LISTEN") or _str(
                agent, "listen", f"127.0.0.1:{DEFAULT_AGENT_PORT}"
            )
            domain = env.get("EDGETRUST_AGENT_TRUST_DOMAIN") or _str(
                agent, "trust_domain", DEFAULT_TRUST_DOMAIN
            )
            models_env = env.get("EDGETRUST_AGENT_MODELS")
            models = (
                tuple(m.strip() for m in models_env.split(",") if m.strip())
                if models_env
                else tuple(_str_list(agent, "models", ["digits-mnv3"]))
            )
            catalog_text = env.get("EDGETRUST_AGENT_CATALOG") or _opt_str(agent, "catalog")
            tls = _tls(_table(data, "tls", where), base, env, where)
            config = cls(
                listen=listen,
                trust_domain=domain,
                tls=tls,
                models=models,
                catalog=_path(base, catalog_text) if catalog_text else None,
                max_workers=_int(agent, "max_workers", 32),
                max_streams=_int(agent, "max_streams", 0) if "max_streams" in agent else None,
                max_concurrent_rpcs=_int(agent, "max_concurrent_rpcs", 256),
                max_message_bytes=_int(agent, "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
                default_top_k=_int(agent, "default_top_k", 5),
                stream_window=_int(agent, "stream_window", 8),
                stream_idle_s=_float(agent, "stream_idle_s", 30.0),
                runtime=_runtime(_table(data, "runtime", where), where),
                batching_enabled=_bool(_table(data, "batching", where), "enabled", True),
                batching=_batching(_table(data, "batching", where), where),
                permissions=_permissions(_table(data, "permissions", where), where),
                revocation=_feed(_table(data, "revocation", where), base, env, where),
            )
        except ConfigError:
            raise
        except Error as e:
            raise ConfigError(f"{where}: {e.message}") from e
        return config


def _tls(table: dict[str, Any], base: Path, env: Mapping[str, str], where: str) -> TlsPaths | None:
    _only(table, {"cert", "key", "client_ca"}, f"{where} [tls]")
    values = {
        name: env.get(f"EDGETRUST_AGENT_TLS_{name.upper()}") or _opt_str(table, name)
        for name in ("cert", "key", "client_ca")
    }
    if not any(values.values()):
        return None
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise ConfigError(f"{where} [tls]: missing {', '.join(missing)}")
    return TlsPaths(
        cert=_path(base, values["cert"] or ""),
        key=_path(base, values["key"] or ""),
        client_ca=_path(base, values["client_ca"] or ""),
    )


def _runtime(table: dict[str, Any], where: str) -> RuntimeSettings:
    _only(
        table,
        {"intra_op_threads", "inter_op_threads", "execution_mode", "graph_optimization"},
        f"{where} [runtime]",
    )
    try:
        return RuntimeSettings(
            intra_op_threads=_int(table, "intra_op_threads", 1),
            inter_op_threads=_int(table, "inter_op_threads", 1),
            execution_mode=ExecutionMode(_str(table, "execution_mode", "sequential")),
            graph_optimization=GraphOptimization(_str(table, "graph_optimization", "all")),
        )
    except ValueError as e:
        raise ConfigError(f"{where} [runtime]: {e}") from e


def _batching(table: dict[str, Any], where: str) -> BatchSettings:
    _only(
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
        max_batch_size=_int(table, "max_batch_size", 8),
        max_queue_delay_ms=_float(table, "max_queue_delay_ms", 0.0),
        max_queue_size=_int(table, "max_queue_size", 64),
        workers=_int(table, "workers", 1),
        early_dispatch=_bool(table, "early_dispatch", True),
        inline_when_idle=_bool(table, "inline_when_idle", True),
    )


def _permissions(table: dict[str, Any], where: str) -> ModelPermissions:
    _only(table, {"default", "devices"}, f"{where} [permissions]")
    devices_raw = table.get("devices", {})
    if not isinstance(devices_raw, dict):
        raise ConfigError(f"{where} [permissions.devices] must be a table")
    devices: dict[str, list[str]] = {}
    for ueid, models in devices_raw.items():
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"{where} [permissions.devices] {ueid}: a list of model names")
        devices[ueid] = models
    return ModelPermissions.from_mapping(
        default=_str_list(table, "default", ["*"]), devices=devices
    )


def _feed(table: dict[str, Any], base: Path, env: Mapping[str, str], where: str) -> FeedConfig:
    _only(
        table,
        {"feed", "ca", "cert", "key", "server_name", "max_staleness_s", "heartbeat_interval_ms"},
        f"{where} [revocation]",
    )
    feed = env.get("EDGETRUST_AGENT_FEED") or _str(table, "feed", "none")
    if feed.startswith("file:") and not Path(feed.removeprefix("file:")).is_absolute():
        feed = "file:" + str(base / feed.removeprefix("file:"))

    def opt_path(name: str) -> Path | None:
        text = _opt_str(table, name)
        return _path(base, text) if text else None

    heartbeat = _int(table, "heartbeat_interval_ms", 1000)
    if not 100 <= heartbeat <= 60_000:
        raise ConfigError(f"{where} [revocation] heartbeat_interval_ms must be in 100..60000")
    return FeedConfig(
        feed=feed,
        ca=opt_path("ca"),
        cert=opt_path("cert"),
        key=opt_path("key"),
        server_name=_opt_str(table, "server_name") or None,
        max_staleness_s=_float(table, "max_staleness_s", 30.0),
        heartbeat_interval_ms=heartbeat,
    )


# ------------------------------------------------------------------------------------------------
# Client
# ------------------------------------------------------------------------------------------------


class Transport(StrEnum):
    """How the remote backend's calls travel to the agent (same answers, same errors).

    ``stream``: one persistent ``ClassifyStream`` per backend, each call one request message and
    its response (no per-call HTTP/2 stream set-up or per-call authentication on the agent); it is
    closed after a few idle seconds, so an idle device does not hold one of the agent's handler
    threads. Calls made while another thread uses the stream go unary. ``unary``: one
    ``Classify`` call per image.
    """

    STREAM = "stream"
    UNARY = "unary"


class BackendChoice(StrEnum):
    AUTO = "auto"  # remote when an agent is configured (falling back to local), else local
    LOCAL = "local"
    REMOTE = "remote"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    """Resolved client configuration (see the module documentation for the sources)."""

    model: str = "digits-mnv3"
    backend: BackendChoice = BackendChoice.AUTO
    agent: str | None = None
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    server_name: str | None = None
    timeout_s: float = 5.0
    retries: int = 2
    fallback: bool = True
    catalog: Path | None = None
    transport: Transport = Transport.STREAM

    def __post_init__(self) -> None:
        if self.agent is not None:
            _check_address(self.agent, "agent")
        if not 0 < self.timeout_s <= 3600:
            raise ConfigError(f"timeout must be in (0, 3600] seconds, not {self.timeout_s}")
        if not 0 <= self.retries <= 20:
            raise ConfigError(f"retries must be in 0..20, not {self.retries}")
        if self.backend is BackendChoice.REMOTE and self.agent is None:
            raise ConfigError(
                "backend 'remote' needs an agent address",
                hint="set EDGETRUST_AGENT=host:port or agent = ... in the [client] table",
            )

    @property
    def wants_remote(self) -> bool:
        return self.backend is BackendChoice.REMOTE or (
            self.backend is BackendChoice.AUTO and self.agent is not None
        )

    @classmethod
    def resolve(
        cls,
        overrides: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> ClientSettings:
        """Keyword overrides (None = unset) > environment > config file > defaults."""
        env = os.environ if environ is None else environ
        path = config_file or (
            Path(env["EDGETRUST_CONFIG"]) if env.get("EDGETRUST_CONFIG") else None
        )
        file_values: dict[str, Any] = {}
        base = Path.cwd()
        if path is not None:
            data = _read_toml(path)
            _only(data, {"client", "agent", "tls", "runtime", "batching", "permissions",
                         "revocation"}, str(path))  # fmt: skip
            file_values = _table(data, "client", str(path))
            base = path.parent
            _only(
                file_values,
                {"model", "backend", "agent", "cert", "key", "ca", "server_name", "timeout",
                 "retries", "fallback", "catalog", "transport"},
                f"{path} [client]",
            )  # fmt: skip
        env_names = {
            "model": "EDGETRUST_MODEL",
            "backend": "EDGETRUST_BACKEND",
            "agent": "EDGETRUST_AGENT",
            "cert": "EDGETRUST_CERT",
            "key": "EDGETRUST_KEY",
            "ca": "EDGETRUST_CA",
            "server_name": "EDGETRUST_SERVER_NAME",
            "timeout": "EDGETRUST_TIMEOUT",
            "retries": "EDGETRUST_RETRIES",
            "fallback": "EDGETRUST_FALLBACK",
            "catalog": "EDGETRUST_CATALOG",
            "transport": "EDGETRUST_TRANSPORT",
        }
        given = {k: v for k, v in (overrides or {}).items() if v is not None}

        def pick(name: str) -> tuple[Any, Path | None]:
            if name in given:
                return given[name], Path.cwd()
            value = env.get(env_names[name])
            if value:
                return value, Path.cwd()
            if name in file_values:
                return file_values[name], base
            return None, None

        def path_of(name: str) -> Path | None:
            value, where = pick(name)
            if value is None:
                return None
            return _path(where or Path.cwd(), str(value))

        model, _ = pick("model")
        backend, _ = pick("backend")
        agent, _ = pick("agent")
        server_name, _ = pick("server_name")
        timeout, _ = pick("timeout")
        retries, _ = pick("retries")
        fallback, _ = pick("fallback")
        transport, _ = pick("transport")
        try:
            choice = BackendChoice(str(backend).lower()) if backend is not None else None
        except ValueError as e:
            raise ConfigError(f"backend must be auto, local or remote, not {backend!r}") from e
        try:
            way = Transport(str(transport).lower()) if transport is not None else None
        except ValueError as e:
            raise ConfigError(f"transport must be stream or unary, not {transport!r}") from e
        return cls(
            model=str(model) if model is not None else "digits-mnv3",
            backend=choice or BackendChoice.AUTO,
            agent=str(agent) if agent else None,
            cert=path_of("cert"),
            key=path_of("key"),
            ca=path_of("ca"),
            server_name=str(server_name) if server_name else None,
            timeout_s=_as_float(timeout, "timeout") if timeout is not None else 5.0,
            retries=_as_int(retries, "retries") if retries is not None else 2,
            fallback=_as_bool(fallback, "fallback") if fallback is not None else True,
            catalog=path_of("catalog"),
            transport=way or Transport.STREAM,
        )


# ------------------------------------------------------------------------------------------------
# TOML helpers
# ------------------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return value


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(unknown)}")


def _str(table: Mapping[str, Any], name: str, default: str) -> str:
    value = table.get(name, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string")
    return value


def _opt_str(table: Mapping[str, Any], name: str) -> str | None:
    value = table.get(name)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string")
    return value


def _str_list(table: Mapping[str, Any], name: str, default: list[str]) -> list[str]:
    value = table.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name} must be a list of strings")
    return value


def _int(table: Mapping[str, Any], name: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer")
    return value


def _float(table: Mapping[str, Any], name: str, default: float) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number")
    return float(value)


def _bool(table: Mapping[str, Any], name: str, default: bool) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false")
    return value


def _as_float(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be a number, not {value!r}") from e


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool | float):
        raise ConfigError(f"{name} must be an integer")
    try:
        return int(str(value))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be an integer, not {value!r}") from e


def _as_bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _path(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _check_address(address: str, what: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} must be HOST:PORT, not {address!r}")
