"""The client's settings (:class:`~edgetrust.offload.client.Classifier`), resolved from its sources.

Keyword arguments, then the environment, then the file named by ``EDGETRUST_CONFIG`` (``[client]``
table; the agent's tables may stand beside it), then defaults:
``EDGETRUST_BACKEND`` (auto | local | remote), ``EDGETRUST_AGENT`` (host:port),
``EDGETRUST_CERT``, ``EDGETRUST_KEY``, ``EDGETRUST_CA``, ``EDGETRUST_SERVER_NAME``,
``EDGETRUST_TIMEOUT`` (seconds), ``EDGETRUST_RETRIES``, ``EDGETRUST_FALLBACK`` (1/0),
``EDGETRUST_MODEL``, ``EDGETRUST_CATALOG``, ``EDGETRUST_TRANSPORT`` (stream | unary: how calls
travel to the agent; see :class:`Transport`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgetrust.errors import ConfigError
from edgetrust.offload.config_values import (
    AGENT_TABLES,
    bool_from,
    check_address,
    float_from,
    int_from,
    only_keys,
    resolve_path,
    subtable,
)
from edgetrust.service.configuration import read_toml_file


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
            check_address(self.agent, "agent")
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
            data = read_toml_file(path)
            only_keys(data, AGENT_TABLES | {"client"}, str(path))
            file_values = subtable(data, "client", str(path))
            base = path.parent
            only_keys(
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
            return resolve_path(where or Path.cwd(), str(value))

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
            timeout_s=float_from(timeout, "timeout") if timeout is not None else 5.0,
            retries=int_from(retries, "retries") if retries is not None else 2,
            fallback=bool_from(fallback, "fallback") if fallback is not None else True,
            catalog=path_of("catalog"),
            transport=way or Transport.STREAM,
        )
