"""verifier_processes without starting processes: settings, port reservation, exit reasons,
metrics. The running group is tested end to end in tests/integration/onboarding/test_processes.py.
"""

from __future__ import annotations

import logging
import signal
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from edgetrust.errors import ConfigError, ServiceError
from edgetrust.onboarding.config import ListenAddress, VerifierConfig, load_config
from edgetrust.onboarding.verifier_processes import (
    VerifierProcesses,
    _aggregate,
    _child_error,
    _exit_reason,
    verifier_settings,
)


@pytest.fixture
def config(tmp_path: Path) -> VerifierConfig:
    path = tmp_path / "verifier.toml"
    path.write_text(
        '[verifier]\nlisten = "127.0.0.1:0"\nfeed_listen = ""\nworkers = 3\nprocesses = 2\n'
        'nonce_ttl_s = 30\ntrust_domain = "t.example"\n'
    )
    return load_config(path, env={})


def test_settings_follow_the_config(config: VerifierConfig) -> None:
    settings = verifier_settings(config, reuse_port=True)
    assert settings.listen == "127.0.0.1:0"
    assert settings.feed_listen is None
    assert settings.workers == 3
    assert settings.trust_domain == "t.example"
    assert settings.attestation.nonce_ttl == timedelta(seconds=30)
    assert settings.reuse_port
    assert not verifier_settings(config).reuse_port


def test_one_process_is_not_a_group(config: VerifierConfig) -> None:
    with pytest.raises(ConfigError, match="at least 2 processes"):
        VerifierProcesses(config, 1, grace=1.0, log_level=logging.WARNING)


def test_port_zero_becomes_a_free_port_held_for_the_children(config: VerifierConfig) -> None:
    group = VerifierProcesses(config, 2, grace=1.0, log_level=logging.WARNING)
    reserved = group._reserve(ListenAddress(host="127.0.0.1", port=0), "listen")
    try:
        assert reserved.port != 0
        # a child binding with SO_REUSEPORT joins the held port ...
        with socket.socket() as child:
            child.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            child.bind(("127.0.0.1", reserved.port))
        # ... anyone else is refused
        with socket.socket() as stranger, pytest.raises(OSError, match="in use"):
            stranger.bind(("127.0.0.1", reserved.port))
    finally:
        for held in group._reserved:
            held.close()


def test_a_port_in_use_even_with_so_reuseport_is_refused(config: VerifierConfig) -> None:
    # Another server listening with SO_REUSEPORT must not silently get company.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        group = VerifierProcesses(config, 2, grace=1.0, log_level=logging.WARNING)
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port} \\(listen\\)"):
            group._reserve(ListenAddress(host="127.0.0.1", port=port), "listen")
    assert group._reserved == []


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGSEGV, "killed by SIGSEGV"),
        (-200, "killed by signal 200"),
        (1, "exit code 1"),
        (0, "exit code 0"),
        (None, "still running"),
    ],
)
def test_exit_reasons(code: int | None, text: str) -> None:
    assert _exit_reason(code) == text


def test_child_errors_keep_their_kind_and_name_the_process() -> None:
    config_error = _child_error(("error", "config", "cannot listen", "free it"), "process 2")
    assert isinstance(config_error, ConfigError)
    assert config_error.message == "process 2: cannot listen"
    assert config_error.hint == "free it"
    service_error = _child_error(("error", "service", "database down", ""), "process 1")
    assert isinstance(service_error, ServiceError)
    assert not service_error.hint


def test_metrics_are_added_up() -> None:
    total = _aggregate(
        [
            {"challenges": 3, "attest_affirmed": 2, "attest_seconds_total": 0.1000004},
            {"challenges": 0, "registry_batches": 1},
        ],
        3,
    )
    assert total == {
        "challenges": 3,
        "attest_affirmed": 2,
        "attest_seconds_total": 0.1,
        "registry_batches": 1,
        "processes": 3,
        "processes_reporting": 2,
        "processes_served": 1,
    }
