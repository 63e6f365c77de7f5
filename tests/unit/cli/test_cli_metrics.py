"""``--metrics HOST:PORT`` of ``verifier serve`` and ``agent serve``: a bad or taken address is
exit 2 with one ``error:`` line; a good one is announced after the listening line and answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edgetrust.cli.main import cli
from edgetrust.cli.reporting import run_guarded
from edgetrust.onboarding.config import load_config
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.workspace import init_workspace, write_config
from tests.scrape import scrape, value

EDGETRUST = [sys.executable, "-c", "from edgetrust.cli.main import main; main()"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_guarded(cli, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def verifier_config(tmp_path: Path) -> Path:
    """A verifier directory with its registry, serving on free ports, no feed."""
    workspace = init_workspace(tmp_path / "v")
    config = write_config(workspace, listen="127.0.0.1:0", feed_listen=None)
    SqlRegistryStore(load_config(config).database_url, create=True).close()
    return config


def _one_error_line(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.startswith("error: "), err
    assert needle in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_verifier_bad_metrics_address_is_exit_2(
    verifier_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, "verifier", "serve", "--config", str(verifier_config), "--metrics", "nowhere"
    )
    _one_error_line(code, err, "--metrics: must be HOST:PORT")
    assert "'nowhere'" in err


def test_verifier_taken_metrics_port_is_exit_2(
    verifier_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        code, _, err = _run(
            capsys, "verifier", "serve", "--config", str(verifier_config), "--metrics", listen
        )
    _one_error_line(code, err, f"cannot serve metrics on {listen}")


def test_agent_bad_metrics_address_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nlisten = "127.0.0.1:0"\n')
    code, _, err = _run(capsys, "agent", "serve", "--config", str(config), "--metrics", "nowhere")
    _one_error_line(code, err, "metrics.listen must be HOST:PORT, not 'nowhere'")


def test_agent_bad_metrics_address_in_the_environment_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGETRUST_METRICS_LISTEN", "nowhere:port")
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nlisten = "127.0.0.1:0"\n')
    code, _, err = _run(capsys, "agent", "serve", "--config", str(config))
    _one_error_line(code, err, "'nowhere:port'")


def test_verifier_serve_announces_and_serves_metrics(verifier_config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGETRUST_")}
    process = subprocess.Popen(
        [*EDGETRUST, "verifier", "serve", "--config", str(verifier_config),
         "--metrics", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()
        assert listening.startswith("verifier listening on 127.0.0.1:"), listening
        announced = process.stdout.readline().strip()
        assert announced.startswith("metrics on http://127.0.0.1:"), announced
        url = announced.removeprefix("metrics on ")
        assert url.endswith("/metrics")
        assert not url.endswith(":0/metrics")
        samples = scrape(url)
        assert value(samples, "edgetrust_verifier_challenges_total") == 0
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "verifier stopped {" in out
