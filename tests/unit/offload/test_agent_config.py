"""Agent and client configuration: TOML, environment overrides, precedence, named rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetrust.errors import ConfigError
from edgetrust.offload.client_settings import BackendChoice, ClientSettings, Transport
from edgetrust.offload.config import AgentConfig
from edgetrust.offload.runtime import ExecutionMode

FULL = """
[agent]
listen = "0.0.0.0:9000"
trust_domain = "fleet.example"
max_workers = 8
max_streams = 3
max_concurrent_rpcs = 100
max_message_bytes = 1048576
default_top_k = 3
stream_window = 4
stream_idle_s = 12.5
catalog = "models/manifest.json"
models = ["digits-mnv3", "efficientnet-lite0"]

[tls]
cert = "tls/agent.crt"
key = "tls/agent.key"
client_ca = "/etc/edgetrust/ca.crt"

[runtime]
intra_op_threads = 2
inter_op_threads = 1
execution_mode = "parallel"

[batching]
enabled = false
max_batch_size = 4
max_queue_delay_ms = 1.5
max_queue_size = 10
workers = 2

[permissions]
default = ["digits-mnv3"]
[permissions.devices]
"A0B1" = ["efficientnet-lite0"]

[revocation]
feed = "verifier:7445"
ca = "tls/verifier-ca.crt"
server_name = "verifier.local"
max_staleness_s = 12
heartbeat_interval_ms = 500
"""


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_full_agent_config(tmp_path: Path) -> None:
    config = AgentConfig.load(write(tmp_path, FULL), environ={})
    assert config.listen == "0.0.0.0:9000"
    assert config.trust_domain == "fleet.example"
    assert config.models == ("digits-mnv3", "efficientnet-lite0")
    assert config.catalog == tmp_path / "models/manifest.json"
    assert config.tls is not None
    assert config.tls.cert == tmp_path / "tls/agent.crt"
    assert config.tls.client_ca == Path("/etc/edgetrust/ca.crt")
    assert config.runtime.intra_op_threads == 2
    assert config.runtime.execution_mode is ExecutionMode.PARALLEL
    assert not config.batching_enabled
    assert config.batching.max_batch_size == 4
    assert config.batching.max_queue_delay_ms == 1.5
    assert config.batching.workers == 2
    assert config.permissions.permits("a0b1", "efficientnet-lite0")
    assert not config.permissions.permits("a0b1", "digits-mnv3")
    assert config.permissions.permits("ffff", "digits-mnv3")
    assert config.revocation.feed == "verifier:7445"
    assert config.revocation.ca == tmp_path / "tls/verifier-ca.crt"
    assert config.revocation.server_name == "verifier.local"
    assert config.revocation.max_staleness_s == 12.0
    assert config.revocation.required
    assert config.max_message_bytes == 1048576
    assert (config.stream_window, config.stream_idle_s) == (4, 12.5)
    assert (config.max_streams, config.stream_limit) == (3, 3)


def test_defaults_without_a_file() -> None:
    config = AgentConfig.load(None, environ={})
    assert config.listen == "127.0.0.1:7444"
    assert config.tls is None
    assert config.models == ("digits-mnv3",)
    assert config.batching_enabled
    assert not config.revocation.required
    assert config.permissions.permits("00", "anything")
    assert (config.max_workers, config.max_streams, config.stream_limit) == (32, None, 16)


@pytest.mark.parametrize(
    ("workers", "streams", "limit"), [(8, None, 4), (1, None, 0), (8, 0, 0), (8, 7, 7)]
)
def test_stream_limit_is_below_the_handler_threads(
    workers: int, streams: int | None, limit: int
) -> None:
    config = AgentConfig(max_workers=workers, max_streams=streams)
    assert config.stream_limit == limit < workers


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[agent]\nmax_workers = 8\nmax_streams = 8\n", r"max_streams \(8\) must be in 0\.\.7"),
        ("[agent]\nmax_streams = 32\n", r"below agent\.max_workers \(32\)"),
        ("[agent]\nmax_workers = 4\nmax_streams = 100\n", "unary calls need the threads"),
        ("[agent]\nmax_streams = -1\n", r"max_streams \(-1\) must be in 0\.\.31"),
        ("[agent]\nmax_streams = 'many'\n", "max_streams must be an integer"),
    ],
)
def test_max_streams_not_below_max_workers_is_a_config_error(
    tmp_path: Path, text: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as raised:
        AgentConfig.load(write(tmp_path, text), environ={})
    assert type(raised.value) is ConfigError


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "EDGETRUST_AGENT_LISTEN": "127.0.0.1:0",
        "EDGETRUST_AGENT_TRUST_DOMAIN": "other.example",
        "EDGETRUST_AGENT_TLS_CERT": "/run/agent.crt",
        "EDGETRUST_AGENT_FEED": "file:revocations.jsonl",
        "EDGETRUST_AGENT_MODELS": "digits-mnv3-int8, digits-mnv3",
    }
    config = AgentConfig.load(write(tmp_path, FULL), environ=env)
    assert config.listen == "127.0.0.1:0"
    assert config.trust_domain == "other.example"
    assert config.tls is not None
    assert config.tls.cert == Path("/run/agent.crt")
    assert config.revocation.feed == f"file:{tmp_path / 'revocations.jsonl'}"
    assert config.models == ("digits-mnv3-int8", "digits-mnv3")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[agent]\nlisten = 'nowhere'\n", "HOST:PORT"),
        ("[agent]\nlisten = 7444\n", "non-empty string"),
        ("[agent]\nmax_workers = 0\n", "max_workers"),
        ("[agent]\nmax_message_bytes = 10\n", "max_message_bytes"),
        ("[agent]\nstream_idle_s = 0\n", "stream_idle_s"),
        ("[agent]\nmodels = []\n", "at least one model"),
        ("[agent]\nmodels = 'digits'\n", "list of strings"),
        ("[agent]\ncolour = 'blue'\n", "unknown keys colour"),
        ("[agnet]\n", "unknown keys agnet"),
        ("agent = 3\n", r"\[agent\] must be a table"),
        ("[tls]\ncert = 'a.crt'\n", "missing key, client_ca"),
        ("[batching]\nmax_batch_size = 0\n", "max_batch_size"),
        ("[batching]\nenabled = 'yes'\n", "true or false"),
        ("[batching]\nmax_queue_delay_ms = 'soon'\n", "number"),
        ("[runtime]\nexecution_mode = 'chaotic'\n", "runtime"),
        ("[runtime]\nintra_op_threads = -1\n", "thread counts"),
        ("[permissions]\ndefault = 'all'\n", "list of strings"),
        ("[permissions.devices]\n'not-hex' = ['x']\n", "not a UEID"),
        ("[permissions.devices]\n'ab' = 'x'\n", "list of model names"),
        ("[revocation]\nfeed = 'grpc://x'\nmax_staleness_s = 0\n", "max_staleness_s"),
        ("[revocation]\nheartbeat_interval_ms = 5\n", "heartbeat_interval_ms"),
        ("[revocation]\npassword = 'x'\n", "unknown keys password"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_invalid_agent_configs_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AgentConfig.load(write(tmp_path, text), environ={})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        AgentConfig.load(tmp_path / "absent.toml", environ={})


# -- client ---------------------------------------------------------------------------------------

CLIENT = """
[client]
model = "digits-mnv3-int8"
backend = "remote"
agent = "10.0.0.5:7444"
cert = "device/op.crt"
key = "device/op.key"
ca = "device/ca.crt"
timeout = 2.5
retries = 4
fallback = false
"""


def test_client_defaults() -> None:
    s = ClientSettings.resolve(environ={})
    assert s.backend is BackendChoice.AUTO
    assert s.agent is None
    assert not s.wants_remote
    assert s.model == "digits-mnv3"
    assert s.fallback
    assert (s.timeout_s, s.retries) == (5.0, 2)
    assert s.transport is Transport.STREAM


def test_client_transport_from_the_environment_or_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, CLIENT + 'transport = "unary"\n', "client.toml")
    assert ClientSettings.resolve(environ={}, config_file=path).transport is Transport.UNARY
    env = {"EDGETRUST_TRANSPORT": "Stream"}
    assert ClientSettings.resolve(environ=env, config_file=path).transport is Transport.STREAM


def test_client_file_values_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    s = ClientSettings.resolve(environ={}, config_file=write(tmp_path, CLIENT, "client.toml"))
    assert s.backend is BackendChoice.REMOTE
    assert s.agent == "10.0.0.5:7444"
    assert s.cert == tmp_path / "device/op.crt"
    assert (s.timeout_s, s.retries, s.fallback) == (2.5, 4, False)
    assert s.model == "digits-mnv3-int8"


def test_client_config_file_named_by_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, CLIENT, "client.toml")
    s = ClientSettings.resolve(environ={"EDGETRUST_CONFIG": str(path)})
    assert s.agent == "10.0.0.5:7444"


def test_client_precedence_arguments_then_environment_then_file(tmp_path: Path) -> None:
    path = write(tmp_path, CLIENT, "client.toml")
    env = {"EDGETRUST_BACKEND": "local", "EDGETRUST_RETRIES": "0", "EDGETRUST_FALLBACK": "yes"}
    s = ClientSettings.resolve({"retries": 7}, environ=env, config_file=path)
    assert s.backend is BackendChoice.LOCAL  # environment over file
    assert s.retries == 7  # argument over environment
    assert s.fallback  # environment over file
    assert s.agent == "10.0.0.5:7444"  # file
    assert not s.wants_remote


def test_auto_backend_is_remote_when_an_agent_is_configured() -> None:
    s = ClientSettings.resolve(environ={"EDGETRUST_AGENT": "127.0.0.1:7444"})
    assert s.backend is BackendChoice.AUTO
    assert s.wants_remote


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"EDGETRUST_BACKEND": "cloud"}, "auto, local or remote"),
        ({"EDGETRUST_BACKEND": "remote"}, "needs an agent address"),
        ({"EDGETRUST_AGENT": "no-port"}, "HOST:PORT"),
        ({"EDGETRUST_TIMEOUT": "fast"}, "timeout must be a number"),
        ({"EDGETRUST_TIMEOUT": "0"}, "timeout must be in"),
        ({"EDGETRUST_RETRIES": "1.5"}, "retries must be an integer"),
        ({"EDGETRUST_RETRIES": "99"}, "retries must be in"),
        ({"EDGETRUST_FALLBACK": "maybe"}, "fallback must be true or false"),
        ({"EDGETRUST_TRANSPORT": "carrier-pigeon"}, "transport must be stream or unary"),
    ],
)
def test_invalid_client_settings_are_config_errors(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ClientSettings.resolve(environ=env)


def test_unknown_client_key_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[client]\nbackend = 'local'\nspeed = 'max'\n", "client.toml")
    with pytest.raises(ConfigError, match="unknown keys speed"):
        ClientSettings.resolve(environ={}, config_file=path)
