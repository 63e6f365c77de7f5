"""Strict reading of configuration values: TOML tables and keys, typed values, environment text.

Shared by the agent's configuration (:mod:`edgetrust.offload.config`) and the client's
(:mod:`edgetrust.offload.client_settings`), which may read the same file (read by
:func:`edgetrust.service.configuration.read_toml_file`, like the verifier's). Every reader raises
:class:`~edgetrust.errors.ConfigError` naming the key; none has a fail-open default.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any, Final

from edgetrust.errors import ConfigError
from edgetrust.service.configuration import parse_host_port

#: the tables of the agent's configuration file; a client reading the same file accepts them
AGENT_TABLES = frozenset(
    {"agent", "tls", "runtime", "batching", "permissions", "revocation", "metrics"}
)


def subtable(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return value


def only_keys(table: Mapping[str, Any], allowed: Set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(unknown)}")


def string_value(table: Mapping[str, Any], name: str, default: str) -> str:
    value = table.get(name, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string")
    return value


def optional_string(table: Mapping[str, Any], name: str) -> str | None:
    value = table.get(name)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string")
    return value


def string_list(table: Mapping[str, Any], name: str, default: list[str]) -> list[str]:
    value = table.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name} must be a list of strings")
    return value


def int_value(table: Mapping[str, Any], name: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer")
    return value


def float_value(table: Mapping[str, Any], name: str, default: float) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number")
    return float(value)


def bool_value(table: Mapping[str, Any], name: str, default: bool) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false")
    return value


def float_from(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be a number, not {value!r}") from e


def int_from(value: object, name: str) -> int:
    if isinstance(value, bool | float):
        raise ConfigError(f"{name} must be an integer")
    try:
        return int(str(value))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be an integer, not {value!r}") from e


def bool_from(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def resolve_path(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


#: the agent's and the client's voice: ``agent.listen must be HOST:PORT, not 'x'``
_ADDRESS_MESSAGE: Final = "{where} {problem}, not {text}"


def check_address(address: str, what: str) -> None:
    """``HOST:PORT`` or ``[IPv6]:PORT`` (port 0: a free one), as strict as the verifier's
    (:func:`~edgetrust.service.configuration.parse_host_port`); ConfigError naming ``what``."""
    parse_host_port(address, what, message=_ADDRESS_MESSAGE)
