"""``edgetrust agent serve`` and ``edgetrust classify`` as real processes over mTLS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgetrust.offload.models import digit_samples
from tests.integration.offload.conftest import Pki, Revoker

EDGETRUST = [sys.executable, "-c", "from edgetrust.cli.main import main; main()"]


@pytest.mark.slow
def test_serve_and_classify_through_the_cli(pki: Pki, revoker: Revoker, tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
[agent]
listen = "127.0.0.1:0"
trust_domain = "edgetrust.test"
models = ["digits-mnv3"]

[tls]
cert = "{pki.agent_cert}"
key = "{pki.agent_key}"
client_ca = "{pki.ca_path}"

[revocation]
feed = "file:{revoker.path}"
heartbeat_interval_ms = 100
"""
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in [n for n in env if n.startswith("EDGETRUST_")]:
        del env[name]
    agent = subprocess.Popen(
        [*EDGETRUST, "agent", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert agent.stdout is not None
        line = agent.stdout.readline()  # "agent listening on 127.0.0.1:PORT (...)"
        assert line.startswith("agent listening on 127.0.0.1:"), line
        address = line.split()[3]
        _, device = pki.device()
        samples = digit_samples()[:3]
        client_env = {
            **env,
            "EDGETRUST_AGENT": address,
            "EDGETRUST_CERT": str(device.cert),
            "EDGETRUST_KEY": str(device.key),
            "EDGETRUST_CA": str(device.ca),
            "EDGETRUST_BACKEND": "remote",
        }
        result = subprocess.run(
            [*EDGETRUST, "classify", "--json", "--no-fallback", *(str(s.path) for s in samples)],
            capture_output=True,
            text=True,
            env=client_env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        predictions = json.loads(result.stdout)["predictions"]
        assert [p["backend"] for p in predictions] == ["remote"] * 3
        assert [p["indices"][0] for p in predictions] == [s.index for s in samples]
    finally:
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err
    assert "agent stopped {" in out
    # the metrics line: the three images travelled on one stream, none refused
    assert "'streams_open': " in out
    assert "'streams_opened': 1, 'streams_refused': 0" in out
