"""The configuration pieces the verifier, the agent and the metrics endpoint share: the TOML file
reader, the strict ``HOST:PORT`` parser (each caller's wording) and the default trust domain."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetrust.errors import ConfigError
from edgetrust.offload import config as agent_config
from edgetrust.offload.client_settings import ClientSettings
from edgetrust.offload.config import AgentConfig
from edgetrust.onboarding import config as verifier_config
from edgetrust.onboarding.config import load_config
from edgetrust.service.configuration import (
    DEFAULT_TRUST_DOMAIN,
    HostPort,
    parse_host_port,
    read_toml_file,
)
from edgetrust.service.metrics import split_host_port

# ------------------------------------------------------------------------------------------------
# HOST:PORT
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:7443", "127.0.0.1", 7443),
        ("localhost:0", "localhost", 0),
        ("agent.fleet.test:65535", "agent.fleet.test", 65535),
        ("[::1]:7443", "::1", 7443),
        ("[::]:0", "::", 0),
    ],
)
def test_good_addresses(text: str, host: str, port: int) -> None:
    address = parse_host_port(text, "x")
    assert address == HostPort(host=host, port=port)
    assert str(address) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nowhere", "must be HOST:PORT"),
        (":80", "must be HOST:PORT"),
        ("[]:80", "must be HOST:PORT"),
        ("host:", "must be HOST:PORT"),
        ("host:x", "must be HOST:PORT"),
        ("host:-1", "must be HOST:PORT"),
        ("host:+80", "must be HOST:PORT"),
        ("host: 80", "must be HOST:PORT"),
        ("host:\u00b2", "must be HOST:PORT"),  # str.isdigit() is true, int() refuses it
        ("host:\u0663", "must be HOST:PORT"),  # Arabic-Indic three: not an ASCII port
        ("host:000080", "must be HOST:PORT"),
        ("host:70000", "must be HOST:PORT with a port 0..65535"),
        ("::1:80", "IPv6 addresses must be in brackets, e.g. [::1]:7443"),
        ("fe80::1", "IPv6 addresses must be in brackets"),
        ("a b:80", "must be HOST:PORT without white space"),
        ("\thost:80", "must be HOST:PORT without white space"),
    ],
)
def test_bad_address_names_where_problem_and_value(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_host_port(text, "[verifier] listen")
    assert type(caught.value) is ConfigError
    assert caught.value.message.startswith(f"[verifier] listen: {problem}")
    assert caught.value.message.endswith(f", not {text!r}")


def test_each_caller_keeps_its_wording() -> None:
    with pytest.raises(ConfigError, match=r"^--metrics: must be HOST:PORT, not 'nowhere'$"):
        verifier_config.parse_listen("nowhere", "--metrics")
    with pytest.raises(ConfigError, match=r"^agent\.listen must be HOST:PORT, not 'nowhere'$"):
        AgentConfig(listen="nowhere")
    with pytest.raises(ConfigError, match=r"^metrics address 'nowhere': must be HOST:PORT$"):
        split_host_port("nowhere")


@pytest.mark.parametrize("listen", ["::1:7444", "agent host:7444", "127.0.0.1:\u00b2"])
def test_the_agent_is_as_strict_as_the_verifier(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"^agent\.listen "):
        AgentConfig(listen=listen)
    with pytest.raises(ConfigError, match=r"^EDGETRUST_VERIFIER_LISTEN: "):
        load_config(None, env={"EDGETRUST_VERIFIER_LISTEN": listen})
    with pytest.raises(ConfigError, match=r"^agent "):
        ClientSettings.resolve(environ={"EDGETRUST_AGENT": listen})


def test_port_zero_stays_allowed_where_it_was() -> None:
    """A free port: the verifier's and the agent's listening ports and the metrics endpoint."""
    assert verifier_config.parse_listen("127.0.0.1:0", "x").port == 0
    assert AgentConfig(listen="127.0.0.1:0", metrics_listen="[::1]:0").listen == "127.0.0.1:0"
    assert split_host_port("127.0.0.1:0") == ("127.0.0.1", 0)


# ------------------------------------------------------------------------------------------------
# The TOML file
# ------------------------------------------------------------------------------------------------


def test_reads_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('[a]\nb = "c"\n')
    assert read_toml_file(path) == {"a": {"b": "c"}}


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read config file .*absent\.toml: "):
        read_toml_file(tmp_path / "absent.toml")


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read config file"):
        read_toml_file(tmp_path)


def test_bad_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('[a]\nb = "c"\n[a\n')
    with pytest.raises(ConfigError) as caught:
        read_toml_file(path)
    assert caught.value.message.startswith(f"{path}: not valid TOML: ")
    assert "line 3" in caught.value.message


def test_text_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_bytes(b'[agent]\nlisten = "caf\xe9:1"\n')
    with pytest.raises(ConfigError, match=r"not valid TOML: not UTF-8 text \(byte 21 is 0xe9\)"):
        read_toml_file(path)


@pytest.mark.parametrize("name", ["verifier.toml", "agent.toml"])
def test_verifier_agent_and_client_word_file_errors_alike(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"not = = toml")
    messages = []
    for load in (
        lambda: load_config(path, env={}),
        lambda: AgentConfig.load(path, environ={}),
        lambda: ClientSettings.resolve(environ={}, config_file=path),
    ):
        with pytest.raises(ConfigError) as caught:
            load()
        messages.append(caught.value.message)
    assert len(set(messages)) == 1
    assert messages[0].startswith(f"{path}: not valid TOML: ")


# ------------------------------------------------------------------------------------------------
# The trust domain
# ------------------------------------------------------------------------------------------------


def test_one_default_trust_domain() -> None:
    assert DEFAULT_TRUST_DOMAIN == "edgetrust.local"
    assert verifier_config.DEFAULT_TRUST_DOMAIN is DEFAULT_TRUST_DOMAIN
    assert agent_config.DEFAULT_TRUST_DOMAIN is DEFAULT_TRUST_DOMAIN
    assert load_config(None, env={}).trust_domain == AgentConfig().trust_domain
