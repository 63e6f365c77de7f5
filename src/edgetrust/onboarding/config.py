"""The verifier's configuration: ``verifier.toml`` plus ``EDGETRUST_*`` environment overrides.

File format (every key optional; relative paths are relative to the file's directory)::

    [verifier]
    listen = "127.0.0.1:7443"          # device port, HOST:PORT ([v6addr]:PORT for IPv6)
    feed_listen = "127.0.0.1:7445"     # revocation feed port (mTLS); "" switches it off
    trust_domain = "edgetrust.local"   # SPIFFE trust domain of operational certificates
    certificate_lifetime_s = 3600      # 60 s .. 1 day; also "90m", "1h"
    nonce_ttl_s = 60                   # 1 s .. 1 h
    endorsement_refresh_s = 5          # 0.1 s .. 1 h
    workers = 8                        # gRPC handler threads (per process), 1..256
    processes = 1                      # verifier processes sharing the ports, 1..64
    ear_format = "jwt"                 # the signed EAR: "jwt" (compact JWS) or "cwt" (COSE_Sign1)

    [keys]
    cluster_ca = "cluster-ca"          # certs.ca directory of the cluster CA
    ear_key = "ear-key.pem"
    server_cert = "server/cert.pem"
    server_key = "server/key.pem"

    [registry]
    url = "registry.db"                # a path (SQLite) or sqlite:///... / postgresql://...
    sqlite_synchronous = "FULL"        # FULL (default), EXTRA or NORMAL; see onboarding.database

    [metrics]
    listen = "127.0.0.1:9464"          # live Prometheus metrics (GET /metrics); default: off

Environment overrides (they win over the file; command-line flags win over both):

=====================================  ==========================================
``EDGETRUST_VERIFIER_CONFIG``          the file itself, when no ``--config`` is given
``EDGETRUST_DB_URL``                   ``[registry] url``
``EDGETRUST_SQLITE_SYNCHRONOUS``       ``[registry] sqlite_synchronous``
``EDGETRUST_VERIFIER_LISTEN``          ``[verifier] listen``
``EDGETRUST_VERIFIER_FEED_LISTEN``     ``[verifier] feed_listen``
``EDGETRUST_VERIFIER_TRUST_DOMAIN``    ``[verifier] trust_domain``
``EDGETRUST_CERT_LIFETIME``            ``[verifier] certificate_lifetime_s``
``EDGETRUST_NONCE_TTL``                ``[verifier] nonce_ttl_s``
``EDGETRUST_VERIFIER_PROCESSES``       ``[verifier] processes``
``EDGETRUST_EAR_FORMAT``               ``[verifier] ear_format``
``EDGETRUST_METRICS_LISTEN``            ``[metrics] listen``
=====================================  ==========================================

The registry database, when nothing names one, is ``registry.db`` next to the config file, or in
the current directory when there is no config file (:func:`registry_url`).

Every problem is a :class:`~edgetrust.errors.ConfigError` naming where it comes from and the field,
e.g. ``verifier.toml: [verifier] nonce_ttl_s: must be at most 1:00:00`` or
``EDGETRUST_VERIFIER_LISTEN: must be HOST:PORT``. Unknown tables and keys are refused: a misspelt
setting silently ignored would leave a default in force that the operator meant to change.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from edgetrust.errors import ConfigError
from edgetrust.onboarding.attestation import EAR_FORMATS, EarFormat
from edgetrust.onboarding.database import SQLITE_SYNCHRONOUS_MODES, parse_database_url
from edgetrust.service import configuration as shared
from edgetrust.service.configuration import HostPort, parse_host_port, read_toml_file

CONFIG_FILE: Final = "verifier.toml"
REGISTRY_FILE: Final = "registry.db"
DEFAULT_LISTEN: Final = "127.0.0.1:7443"
DEFAULT_FEED_LISTEN: Final = "127.0.0.1:7445"
DEFAULT_TRUST_DOMAIN: Final = shared.DEFAULT_TRUST_DOMAIN
MAX_PROCESSES: Final = 64
DEFAULT_EAR_FORMAT: Final[EarFormat] = "jwt"

ENV_CONFIG: Final = "EDGETRUST_VERIFIER_CONFIG"
ENV_DB_URL: Final = "EDGETRUST_DB_URL"

#: environment variable -> (table, key) it overrides
ENV_OVERRIDES: Final[Mapping[str, tuple[str, str]]] = {
    ENV_DB_URL: ("registry", "url"),
    "EDGETRUST_SQLITE_SYNCHRONOUS": ("registry", "sqlite_synchronous"),
    "EDGETRUST_VERIFIER_LISTEN": ("verifier", "listen"),
    "EDGETRUST_VERIFIER_FEED_LISTEN": ("verifier", "feed_listen"),
    "EDGETRUST_VERIFIER_TRUST_DOMAIN": ("verifier", "trust_domain"),
    "EDGETRUST_CERT_LIFETIME": ("verifier", "certificate_lifetime_s"),
    "EDGETRUST_NONCE_TTL": ("verifier", "nonce_ttl_s"),
    "EDGETRUST_VERIFIER_PROCESSES": ("verifier", "processes"),
    "EDGETRUST_EAR_FORMAT": ("verifier", "ear_format"),
    "EDGETRUST_METRICS_LISTEN": ("metrics", "listen"),
}

_SCHEMA: Final[Mapping[str, frozenset[str]]] = {
    "verifier": frozenset(
        {
            "listen",
            "feed_listen",
            "trust_domain",
            "certificate_lifetime_s",
            "nonce_ttl_s",
            "endorsement_refresh_s",
            "workers",
            "processes",
            "ear_format",
        }
    ),
    "keys": frozenset({"cluster_ca", "ear_key", "server_cert", "server_key"}),
    "registry": frozenset({"url", "sqlite_synchronous"}),
    "metrics": frozenset({"listen"}),
}
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]{1,255}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


#: a ``HOST:PORT`` of the verifier (the shared :class:`~edgetrust.service.configuration.HostPort`)
ListenAddress = HostPort


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierConfig:
    """``verifier.toml`` resolved: absolute paths, environment applied, every value checked."""

    #: The file read, or ``None`` when running on defaults and environment only.
    path: Path | None
    listen: ListenAddress
    feed_listen: ListenAddress | None
    trust_domain: str
    certificate_lifetime: timedelta
    nonce_ttl: timedelta
    endorsement_refresh: timedelta
    workers: int
    #: verifier processes serving the same ports (``verifier serve --processes``)
    processes: int
    cluster_ca: Path
    ear_key: Path
    server_cert: Path
    server_key: Path
    database_url: str
    sqlite_synchronous: str
    #: live Prometheus metrics endpoint (``[metrics] listen``, ``--metrics``); None: off
    metrics_listen: ListenAddress | None = None
    #: how the verifier signs EARs (``[verifier] ear_format``): "jwt" or "cwt"
    ear_format: EarFormat = DEFAULT_EAR_FORMAT


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> VerifierConfig:
    """Read ``path`` (or ``$EDGETRUST_VERIFIER_CONFIG``, or nothing) and apply the environment."""
    env = os.environ if env is None else env
    if path is None and env.get(ENV_CONFIG):
        path = env[ENV_CONFIG]
    file = Path(path).resolve() if path is not None else None
    data = _read(file) if file is not None else {}
    base = file.parent if file is not None else Path.cwd()
    source = file.name if file is not None else "defaults"
    values = _Values(data, env, source)
    feed = values.text("verifier", "feed_listen", DEFAULT_FEED_LISTEN, allow_empty=True)
    metrics = values.text("metrics", "listen", "", allow_empty=True)
    return VerifierConfig(
        path=file,
        listen=values.listen("verifier", "listen", DEFAULT_LISTEN),
        feed_listen=values.listen("verifier", "feed_listen", feed) if feed else None,
        trust_domain=values.trust_domain("verifier", "trust_domain", DEFAULT_TRUST_DOMAIN),
        certificate_lifetime=values.duration(
            "verifier", "certificate_lifetime_s", 3600, low=60, high=86400
        ),
        nonce_ttl=values.duration("verifier", "nonce_ttl_s", 60, low=1, high=3600),
        endorsement_refresh=values.duration(
            "verifier", "endorsement_refresh_s", 5, low=0.1, high=3600
        ),
        workers=values.integer("verifier", "workers", 8, low=1, high=256),
        processes=values.integer("verifier", "processes", 1, low=1, high=MAX_PROCESSES),
        cluster_ca=base / values.text("keys", "cluster_ca", "cluster-ca"),
        ear_key=base / values.text("keys", "ear_key", "ear-key.pem"),
        server_cert=base / values.text("keys", "server_cert", "server/cert.pem"),
        server_key=base / values.text("keys", "server_key", "server/key.pem"),
        database_url=values.database_url("registry", "url", REGISTRY_FILE, base),
        sqlite_synchronous=values.choice(
            "registry", "sqlite_synchronous", "FULL", SQLITE_SYNCHRONOUS_MODES
        ),
        metrics_listen=values.listen("metrics", "listen", metrics) if metrics else None,
        ear_format=values.ear_format("verifier", "ear_format", DEFAULT_EAR_FORMAT),
    )


def registry_url(
    *,
    db: str | None = None,
    config: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """The registry database for tools such as ``edgetrust registry``, in this order:

    ``db`` (``--db``), the ``[registry] url`` of ``config`` (``--config``, with the environment
    applied), ``$EDGETRUST_DB_URL``, ``$EDGETRUST_VERIFIER_CONFIG``, ``./verifier.toml`` when it
    exists, and finally ``sqlite:///./registry.db``.
    """
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    if db is not None:
        return _database_url(db, cwd, "--db")
    if config is not None:
        return load_config(config, env=env).database_url
    if env.get(ENV_DB_URL):
        return _database_url(env[ENV_DB_URL], cwd, ENV_DB_URL)
    if env.get(ENV_CONFIG):
        return load_config(env[ENV_CONFIG], env=env).database_url
    if (cwd / CONFIG_FILE).is_file():
        return load_config(cwd / CONFIG_FILE, env=env).database_url
    return _database_url(REGISTRY_FILE, cwd, "default")


def parse_duration(value: object, where: str) -> timedelta:
    """Seconds as a number, or a string with a unit: ``"250ms"``, ``"90s"``, ``"5m"``, ``"1h"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: must be a duration, not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ConfigError(f'{where}: must be a duration such as 60, "90s", "1h", not {value!r}')
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{where}: must be a finite, non-negative duration")
    return timedelta(seconds=seconds)


def parse_listen(value: str, where: str) -> ListenAddress:
    """``HOST:PORT`` or ``[IPv6]:PORT``; port 0 asks the system for a free one
    (:func:`~edgetrust.service.configuration.parse_host_port`)."""
    return parse_host_port(value, where)


# ------------------------------------------------------------------------------------------


def _read(file: Path) -> dict[str, Any]:
    data = read_toml_file(file)
    for table, value in data.items():
        if table not in _SCHEMA:
            raise ConfigError(
                f"{file.name}: unknown table [{table}] (known: {', '.join(sorted(_SCHEMA))})"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{file.name}: [{table}] must be a table")
        unknown = sorted(set(value) - _SCHEMA[table])
        if unknown:
            raise ConfigError(f"{file.name}: [{table}] has unknown key(s) {', '.join(unknown)}")
    return data


def _database_url(value: str, base: Path, where: str) -> str:
    """A bare path or a relative SQLite URL resolved against ``base``; any URL checked."""
    if not value.strip():
        raise ConfigError(f"{where}: the database URL is empty")
    if "://" not in value:
        return f"sqlite:///{(base / value).resolve()}"
    try:
        target = parse_database_url(value)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e.message}", hint=e.hint or None) from e
    path = target.sqlite_path
    if path is not None and not path.is_absolute():
        return f"sqlite:///{(base / path).resolve()}"
    return value


class _Values:
    """Looks a key up in the environment first, then in the file; names the source in errors."""

    def __init__(self, data: Mapping[str, Any], env: Mapping[str, str], source: str) -> None:
        self._data = data
        self._env = {target: name for name, target in ENV_OVERRIDES.items() if env.get(name)}
        self._environ = env
        self._source = source

    def _get(self, table: str, key: str, default: object) -> tuple[object, str]:
        name = self._env.get((table, key))
        if name is not None:
            return self._environ[name], name
        value = self._data.get(table, {}).get(key, default)
        return value, f"{self._source}: [{table}] {key}"

    def text(self, table: str, key: str, default: str, *, allow_empty: bool = False) -> str:
        value, where = self._get(table, key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, not {value!r}")
        if not value and not allow_empty:
            raise ConfigError(f"{where}: must not be empty")
        return value

    def listen(self, table: str, key: str, default: str) -> ListenAddress:
        value, where = self._get(table, key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string HOST:PORT, not {value!r}")
        return parse_listen(value, where)

    def trust_domain(self, table: str, key: str, default: str) -> str:
        value = self.text(table, key, default)
        if not _TRUST_DOMAIN.match(value):
            _, where = self._get(table, key, default)
            raise ConfigError(
                f"{where}: {value!r} is not a SPIFFE trust domain "
                "(lower-case letters, digits, '.', '-', '_'; no scheme, no port)"
            )
        return value

    def duration(
        self, table: str, key: str, default: float, *, low: float, high: float
    ) -> timedelta:
        value, where = self._get(table, key, default)
        result = parse_duration(value, where)
        if result < timedelta(seconds=low):
            raise ConfigError(f"{where}: must be at least {timedelta(seconds=low)}")
        if result > timedelta(seconds=high):
            raise ConfigError(f"{where}: must be at most {timedelta(seconds=high)}")
        return result

    def integer(self, table: str, key: str, default: int, *, low: int, high: int) -> int:
        value, where = self._get(table, key, default)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{where}: must be an integer {low}..{high}, not {value!r}")
        return value

    def choice(self, table: str, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(table, key, default)
        if value.upper() not in allowed:
            _, where = self._get(table, key, default)
            raise ConfigError(f"{where}: must be one of {', '.join(allowed)}, not {value!r}")
        return value.upper()

    def ear_format(self, table: str, key: str, default: EarFormat) -> EarFormat:
        value = self.text(table, key, default)
        for known in EAR_FORMATS:
            if value == known:
                return known
        _, where = self._get(table, key, default)
        raise ConfigError(f"{where}: must be one of {', '.join(EAR_FORMATS)}, not {value!r}")

    def database_url(self, table: str, key: str, default: str, base: Path) -> str:
        value = self.text(table, key, default)
        _, where = self._get(table, key, default)
        # A URL from the environment is relative to the working directory, like any env path.
        origin = Path.cwd() if where in ENV_OVERRIDES else base
        return _database_url(value, origin, where)
