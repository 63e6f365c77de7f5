"""``edgetrust classify`` (local backend) and ``edgetrust agent serve`` refusals, in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgetrust.cli.main import cli as main_cli
from edgetrust.cli.reporting import run_guarded
from edgetrust.offload.models import digit_samples


@pytest.fixture(autouse=True)
def no_edgetrust_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("EDGETRUST_")]:
        monkeypatch.delenv(name)


def run(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        code = run_guarded(main_cli, list(args))
        return code, out.getvalue().decode(), err.getvalue().decode()


def test_classify_locally_prints_one_line_per_image() -> None:
    samples = digit_samples()[:2]
    code, out, _ = run("classify", "--backend", "local", *(str(s.path) for s in samples))
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for line, sample in zip(lines, samples, strict=True):
        assert line.startswith(f"{sample.path}: {sample.label} (")
        assert "[local," in line


def test_classify_json() -> None:
    sample = digit_samples()[5]
    code, out, _ = run("classify", "--json", "--top-k", "3", str(sample.path))
    assert code == 0
    (prediction,) = json.loads(out)["predictions"]
    assert prediction["image"] == str(sample.path)
    assert prediction["indices"][0] == sample.index
    assert len(prediction["labels"]) == 3
    assert prediction["backend"] == "local"


def test_missing_image_is_exit_2(tmp_path: Path) -> None:
    code, _, err = run("classify", str(tmp_path / "absent.png"))
    assert code == 2
    assert err.startswith("error: cannot read image file")
    assert "Traceback" not in err


def test_remote_without_agent_is_exit_2() -> None:
    code, _, err = run("classify", "--backend", "remote", "x.png")
    assert code == 2
    assert "needs an agent address" in err


def test_agent_serve_without_tls_is_exit_2() -> None:
    code, _, err = run("agent", "serve")
    assert code == 2
    assert "mutual TLS only" in err


def test_agent_serve_with_bad_config_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[agent]\nlisten = 'nowhere'\n")
    code, _, err = run("agent", "serve", "--config", str(config))
    assert code == 2
    assert "HOST:PORT" in err
