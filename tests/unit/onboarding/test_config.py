"""verifier.toml + EDGETRUST_* overrides: defaults, resolution, and a named refusal per field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from edgetrust.errors import ConfigError
from edgetrust.onboarding.config import (
    ListenAddress,
    load_config,
    parse_duration,
    parse_listen,
    registry_url,
)

FULL = """
[verifier]
listen = "0.0.0.0:9443"
feed_listen = "[::1]:9445"
trust_domain = "fleet.example"
certificate_lifetime_s = "30m"
nonce_ttl_s = 20
endorsement_refresh_s = 0.5
workers = 4
processes = 3
ear_format = "cwt"

[keys]
cluster_ca = "ca"
ear_key = "/etc/edgetrust/ear.pem"
server_cert = "tls/cert.pem"
server_key = "tls/key.pem"

[registry]
url = "data/registry.db"
sqlite_synchronous = "normal"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "verifier.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.path is None
    assert config.listen == ListenAddress(host="127.0.0.1", port=7443)
    assert str(config.feed_listen) == "127.0.0.1:7445"
    assert config.trust_domain == "edgetrust.local"
    assert config.certificate_lifetime == timedelta(hours=1)
    assert config.nonce_ttl == timedelta(seconds=60)
    assert config.workers == 8
    assert config.processes == 1
    assert config.ear_format == "jwt"
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'registry.db'}"
    assert config.sqlite_synchronous == "FULL"
    assert config.server_key == tmp_path.resolve() / "server/key.pem"


def test_full_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL), env={})
    base = tmp_path.resolve()
    assert config.path == base / "verifier.toml"
    assert str(config.listen) == "0.0.0.0:9443"
    assert config.feed_listen == ListenAddress(host="::1", port=9445)
    assert str(config.feed_listen) == "[::1]:9445"
    assert config.trust_domain == "fleet.example"
    assert config.certificate_lifetime == timedelta(minutes=30)
    assert config.nonce_ttl == timedelta(seconds=20)
    assert config.endorsement_refresh == timedelta(seconds=0.5)
    assert config.workers == 4
    assert config.processes == 3
    assert config.ear_format == "cwt"
    assert config.cluster_ca == base / "ca"
    assert config.ear_key == Path("/etc/edgetrust/ear.pem")
    assert config.database_url == f"sqlite:///{base / 'data/registry.db'}"
    assert config.sqlite_synchronous == "NORMAL"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    env = {
        "EDGETRUST_DB_URL": "postgresql://verifier@db.internal/edgetrust",
        "EDGETRUST_VERIFIER_LISTEN": "10.0.0.1:7000",
        "EDGETRUST_VERIFIER_FEED_LISTEN": "",  # empty: not an override
        "EDGETRUST_VERIFIER_TRUST_DOMAIN": "prod.example",
        "EDGETRUST_CERT_LIFETIME": "2h",
        "EDGETRUST_NONCE_TTL": "45",
        "EDGETRUST_SQLITE_SYNCHRONOUS": "EXTRA",
        "EDGETRUST_VERIFIER_PROCESSES": "2",
        "EDGETRUST_EAR_FORMAT": "jwt",
    }
    config = load_config(_write(tmp_path, FULL), env=env)
    assert config.database_url == "postgresql://verifier@db.internal/edgetrust"
    assert str(config.listen) == "10.0.0.1:7000"
    assert str(config.feed_listen) == "[::1]:9445"
    assert config.trust_domain == "prod.example"
    assert config.certificate_lifetime == timedelta(hours=2)
    assert config.nonce_ttl == timedelta(seconds=45)
    assert config.sqlite_synchronous == "EXTRA"
    assert config.processes == 2
    assert config.ear_format == "jwt"


def test_ear_format_from_the_environment_alone(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, ""), env={"EDGETRUST_EAR_FORMAT": "cwt"}).ear_format == (
        "cwt"
    )


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, FULL)
    assert load_config(env={"EDGETRUST_VERIFIER_CONFIG": str(path)}).path == path.resolve()


def test_feed_can_be_switched_off(tmp_path: Path) -> None:
    assert (
        load_config(_write(tmp_path, '[verifier]\nfeed_listen = ""\n'), env={}).feed_listen is None
    )


def test_sqlite_urls_are_resolved_against_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[registry]\nurl = "sqlite:///rel/r.db"\n')
    assert load_config(path, env={}).database_url == f"sqlite:///{tmp_path.resolve()}/rel/r.db"
    path = _write(tmp_path, '[registry]\nurl = "sqlite:////abs/r.db"\n')
    assert load_config(path, env={}).database_url == "sqlite:////abs/r.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[verifier\n", "not valid TOML"),
        ("[server]\nlisten = 'x'\n", r"unknown table \[server\]"),
        ("verifier = 3\n", r"\[verifier\] must be a table"),
        ("[verifier]\nlisen = 'x:1'\n", r"\[verifier\] has unknown key\(s\) lisen"),
        ("[verifier]\nlisten = 'nohost'\n", r"\[verifier\] listen: must be HOST:PORT"),
        ("[verifier]\nlisten = 'h:70000'\n", r"\[verifier\] listen: must be HOST:PORT"),
        ("[verifier]\nlisten = '::1:80'\n", r"\[verifier\] listen: IPv6 addresses must be in"),
        ("[verifier]\nlisten = 7443\n", r"\[verifier\] listen: must be a string"),
        ("[verifier]\nfeed_listen = 'x'\n", r"\[verifier\] feed_listen: must be HOST:PORT"),
        (
            "[verifier]\ntrust_domain = 'spiffe://x'\n",
            r"\[verifier\] trust_domain: .* not a SPIFFE",
        ),
        ("[verifier]\ntrust_domain = 'Upper.Case'\n", r"trust_domain: .* not a SPIFFE"),
        ("[verifier]\ncertificate_lifetime_s = 10\n", r"certificate_lifetime_s: must be at least"),
        ("[verifier]\ncertificate_lifetime_s = '2d'\n", r"certificate_lifetime_s: must be at most"),
        (
            "[verifier]\ncertificate_lifetime_s = 'soon'\n",
            r"certificate_lifetime_s: must be a duration",
        ),
        ("[verifier]\nnonce_ttl_s = 0\n", r"\[verifier\] nonce_ttl_s: must be at least"),
        ("[verifier]\nnonce_ttl_s = true\n", r"nonce_ttl_s: must be a duration"),
        ("[verifier]\nnonce_ttl_s = nan\n", r"nonce_ttl_s: must be a finite"),
        ("[verifier]\nendorsement_refresh_s = 7200\n", r"endorsement_refresh_s: must be at most"),
        ("[verifier]\nworkers = 0\n", r"\[verifier\] workers: must be an integer 1..256"),
        ("[verifier]\nworkers = 2.5\n", r"workers: must be an integer"),
        ("[verifier]\nprocesses = 0\n", r"\[verifier\] processes: must be an integer 1..64"),
        ("[verifier]\nprocesses = 65\n", r"\[verifier\] processes: must be an integer 1..64"),
        ("[verifier]\nprocesses = 1.5\n", r"\[verifier\] processes: must be an integer"),
        (
            "[verifier]\near_format = 'cose'\n",
            r"\[verifier\] ear_format: must be one of jwt, cwt, not 'cose'$",
        ),
        ("[verifier]\near_format = 'JWT'\n", r"ear_format: must be one of jwt, cwt, not 'JWT'"),
        ("[verifier]\near_format = ''\n", r"\[verifier\] ear_format: must not be empty"),
        ("[verifier]\near_format = 1\n", r"\[verifier\] ear_format: must be a string"),
        ("[keys]\near_key = ''\n", r"\[keys\] ear_key: must not be empty"),
        ("[keys]\nserver_key = 1\n", r"\[keys\] server_key: must be a string"),
        ("[registry]\nurl = 'mysql://x/y'\n", r"\[registry\] url: unsupported database 'mysql'"),
        ("[registry]\nurl = ' '\n", r"\[registry\] url: the database URL is empty"),
        ("[registry]\nsqlite_synchronous = 'OFF'\n", r"sqlite_synchronous: must be one of"),
    ],
)
def test_bad_field_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text), env={})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EDGETRUST_VERIFIER_LISTEN", "no-port", "EDGETRUST_VERIFIER_LISTEN: must be HOST:PORT"),
        ("EDGETRUST_CERT_LIFETIME", "forever", "EDGETRUST_CERT_LIFETIME: must be a duration"),
        ("EDGETRUST_NONCE_TTL", "2h", "EDGETRUST_NONCE_TTL: must be at most"),
        ("EDGETRUST_DB_URL", "oracle://x", "EDGETRUST_DB_URL: unsupported database"),
        ("EDGETRUST_VERIFIER_TRUST_DOMAIN", "a b", "EDGETRUST_VERIFIER_TRUST_DOMAIN: 'a b' is not"),
        ("EDGETRUST_VERIFIER_PROCESSES", "two", "EDGETRUST_VERIFIER_PROCESSES: must be an integer"),
        ("EDGETRUST_VERIFIER_PROCESSES", "0", "EDGETRUST_VERIFIER_PROCESSES: must be an integer"),
        ("EDGETRUST_EAR_FORMAT", "xml", "EDGETRUST_EAR_FORMAT: must be one of jwt, cwt, not 'xml'"),
    ],
)
def test_bad_environment_variable_is_named(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, ""), env={name: value})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml", env={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (5, 5),
        (2.5, 2.5),
        ("250ms", 0.25),
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        (" 7 ", 7),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == timedelta(seconds=seconds)


def test_parse_listen_port_zero_and_ipv6() -> None:
    assert parse_listen("127.0.0.1:0", "x").port == 0
    assert parse_listen("[::]:7443", "x") == ListenAddress(host="::", port=7443)


class TestRegistryUrl:
    def test_db_flag_wins(self, tmp_path: Path) -> None:
        url = registry_url(db="x.db", config=_write(tmp_path, FULL), env={}, cwd=tmp_path)
        assert url == f"sqlite:///{tmp_path.resolve() / 'x.db'}"

    def test_config_flag(self, tmp_path: Path) -> None:
        url = registry_url(config=_write(tmp_path, FULL), env={}, cwd=Path("/"))
        assert url == f"sqlite:///{tmp_path.resolve() / 'data/registry.db'}"

    def test_env_url_then_env_config_then_cwd_file_then_default(self, tmp_path: Path) -> None:
        env_url = {"EDGETRUST_DB_URL": "postgresql://u@h/db"}
        assert registry_url(env=env_url, cwd=tmp_path) == "postgresql://u@h/db"
        other = tmp_path / "other"
        other.mkdir()
        path = _write(other, FULL)
        env_config = {"EDGETRUST_VERIFIER_CONFIG": str(path)}
        assert registry_url(env=env_config, cwd=tmp_path).endswith("other/data/registry.db")
        assert registry_url(env={}, cwd=tmp_path) == f"sqlite:///{tmp_path.resolve()}/registry.db"
        _write(tmp_path, '[registry]\nurl = "here.db"\n')
        assert registry_url(env={}, cwd=tmp_path) == f"sqlite:///{tmp_path.resolve()}/here.db"

    def test_bad_db_flag(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="--db: not a valid database URL"):
            registry_url(db="not a url://x", env={}, cwd=tmp_path)
