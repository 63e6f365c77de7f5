"""What the verifier's and the agent's configurations share: reading the TOML file, ``HOST:PORT``
addresses, and the default SPIFFE trust domain.

:mod:`edgetrust.onboarding.config` (``verifier.toml``), :mod:`edgetrust.offload.config`
(``agent.toml``, the client's ``[client]`` table) and the metrics endpoint
(:mod:`edgetrust.service.metrics`) use these, so a file or an address the verifier refuses is
refused by the agent for the same reason. Every problem is a :class:`~edgetrust.errors.ConfigError`
naming where the value came from; each caller words it in its own voice (``message``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edgetrust.errors import ConfigError

__all__ = [
    "DEFAULT_TRUST_DOMAIN",
    "METRICS_EXAMPLE",
    "HostPort",
    "parse_host_port",
    "read_toml_file",
]

#: the SPIFFE trust domain of operational certificates, and the one the agent expects of devices
DEFAULT_TRUST_DOMAIN: Final = "edgetrust.local"

#: the commented ``[metrics]`` example that ``verifier init`` and ``agent init`` put at the end of
#: the file they write (uncommented, it switches the endpoint on)
METRICS_EXAMPLE: Final = (
    "# live metrics, GET /metrics in the Prometheus text format; no TLS: bind to a private address",
    "# [metrics]",
    '# listen = "127.0.0.1:9464"',
)

#: how an address error reads by default: ``verifier.toml: [verifier] listen: must be HOST:PORT,
#: not 'x'``. ``{where}``: the caller's name for the value; ``{problem}``: what is wrong with it;
#: ``{text}``: the value, quoted.
WHERE_COLON_PROBLEM: Final = "{where}: {problem}, not {text}"

_MAX_PORT: Final = 65535


def read_toml_file(path: Path) -> dict[str, Any]:
    """The tables of the TOML file ``path``; ConfigError when it cannot be read, is not UTF-8 or
    is not TOML (naming the file, and for TOML the line and column)."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not valid TOML: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})"
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPort:
    """A host (name, IPv4 or IPv6 address, without brackets) and a port (0: any free one)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(text: str, where: str, *, message: str = WHERE_COLON_PROBLEM) -> HostPort:
    """``HOST:PORT`` or ``[IPv6]:PORT``, strictly; port 0 asks the system for a free port.

    Refused: no port, an empty host, a port that is not 1 to 5 ASCII digits or above 65535, an
    IPv6 address without brackets (``::1:80`` is ambiguous), white space in the host. The
    ConfigError reads ``message`` filled in with ``where``, ``problem`` and ``text`` (see
    :data:`WHERE_COLON_PROBLEM`).
    """

    def refuse(problem: str) -> ConfigError:
        return ConfigError(message.format(where=where, problem=problem, text=repr(text)))

    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise refuse("IPv6 addresses must be in brackets, e.g. [::1]:7443")
    if not sep or not host or not (port.isascii() and port.isdigit() and len(port) <= 5):
        raise refuse("must be HOST:PORT")
    if int(port) > _MAX_PORT:
        raise refuse(f"must be HOST:PORT with a port 0..{_MAX_PORT}")
    if any(ch.isspace() for ch in host):
        raise refuse("must be HOST:PORT without white space")
    return HostPort(host=host, port=int(port))
