"""``edgetrust demo``: the whole story on 127.0.0.1, checked step by step from its JSON report.

The main run is a real process (as the README runs it) with hostile ``EDGETRUST_*`` variables in
its environment, which the demo must ignore, and its own TMPDIR so the test can see that the
temporary working directory is removed. The failure paths run in-process (CliRunner) with one step
of the story replaced.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edgetrust.cli import demo_story
from edgetrust.cli.demo import cli as demo_cli
from edgetrust.cli.demo_state import DemoState, StepLog
from edgetrust.errors import ServiceError

pytestmark = pytest.mark.slow

EDGETRUST = [sys.executable, "-c", "from edgetrust.cli.main import main; main()"]
DEVICES = 3


def _environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGETRUST_")}
    # Settings that would break the demo if it read them: it runs on embedded defaults only.
    env |= {
        "TMPDIR": str(tmp),
        "EDGETRUST_BACKEND": "remote",
        "EDGETRUST_AGENT": "127.0.0.1:9",
        "EDGETRUST_MODEL": "no-such-model",
        "EDGETRUST_VERIFIER_CONFIG": str(tmp / "missing.toml"),
        "EDGETRUST_DB_URL": "postgresql://nobody@127.0.0.1:9/none",
        "EDGETRUST_AGENT_FEED": "none",
    }
    return env


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("demo-tmp")
    result = subprocess.run(
        [*EDGETRUST, "demo", "--json"],
        capture_output=True,
        text=True,
        env=_environment(tmp),
        cwd=tmp,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout), tmp


@pytest.fixture(scope="module")
def report(run: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    return run[0]


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    data: dict[str, Any] = report["steps"][name]
    return data


def assert_closed(address: str) -> None:
    """Nothing listens on ``address`` any more (the server was stopped)."""
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            s.connect((host, int(port)))


def test_every_step_behaved(report: dict[str, Any]) -> None:
    assert report["ok"] is True
    assert report["failed_step"] is None
    assert list(report["steps"]) == [
        "factory", "verifier", "onboarding", "agent", "classification", "tampered", "revocation",
    ]  # fmt: skip
    for name, data in report["steps"].items():
        assert data["ok"] is True, (name, data["error"], data["checks"])
        assert data["checks"], name
        assert all(c["ok"] for c in data["checks"]), name
    assert len(report["shown"]) == 7
    assert report["seconds"] < 60


def test_factory_provisioned_devices_and_a_spare(report: dict[str, Any]) -> None:
    factory = step(report, "factory")
    assert factory["provisioned"] == DEVICES + 1
    assert [d["uds_mode"] for d in factory["devices"]] == ["0600"] * (DEVICES + 1)
    assert all(d["device_id_issuer"] == factory["issuing_ca"] for d in factory["devices"])
    assert len({d["ueid"] for d in factory["devices"]}) == DEVICES + 1
    assert factory["layers"] == ["bootloader", "firmware"]


def test_devices_onboarded_with_spiffe_ids(report: dict[str, Any]) -> None:
    onboarding = step(report, "onboarding")
    provisioned = step(report, "factory")["devices"]
    assert onboarding["onboarded"] == DEVICES
    for device, made in zip(onboarding["devices"], provisioned, strict=False):
        assert device["ueid"] == made["ueid"]
        assert device["affirmed"] is True
        assert device["tier"] == "affirming"
        assert device["reasons"] == []
        assert device["spiffe_id"] == f"spiffe://edgetrust.local/device/{device['ueid']}"
        assert abs(device["lifetime_s"] - 3600) <= 10
        assert device["chain_length"] == 4  # 2 alias certificates, DeviceID, intermediate


def test_agent_follows_the_verifiers_feed(report: dict[str, Any]) -> None:
    agent = step(report, "agent")
    assert agent["feed"] == step(report, "verifier")["feed_address"]
    assert agent["extended_key_usage"] == ["serverAuth", "clientAuth"]
    assert agent["models"] == ["digits-mnv3"]


def test_remote_top1_equals_local_top1_through_one_api(report: dict[str, Any]) -> None:
    classification = step(report, "classification")
    assert classification["images"] == 10
    assert classification["remote_equals_local_top1"] is True
    for row in classification["predictions"]:
        assert row["remote"]["label"] == row["local_fp32"]["label"], row
        assert row["remote"]["backend"] == "remote"
        assert row["local_fp32"]["backend"] == "local"
        assert row["local_int8"]["backend"] == "local"
        assert row["remote"]["latency_ms"] > 0
    configs = classification["configurations"]
    assert [configs[n]["EDGETRUST_BACKEND"] for n in ("local fp32", "local int8", "remote")] == [
        "local", "local", "remote",
    ]  # fmt: skip
    assert configs["local int8"]["EDGETRUST_MODEL"] == "digits-mnv3-int8"
    assert configs["remote"]["EDGETRUST_AGENT"] == step(report, "agent")["address"]
    assert [o["backend"] for o in classification["other_devices"]] == ["remote"] * (DEVICES - 1)


def test_tampered_device_refused_for_its_measurement(report: dict[str, Any]) -> None:
    tampered = step(report, "tampered")
    assert tampered["ueid"] == step(report, "factory")["devices"][-1]["ueid"]
    assert tampered["refused"] is True
    assert "measurement_mismatch:firmware" in tampered["reasons"]
    assert tampered["measurement_reasons"] == ["measurement_mismatch:firmware"]
    assert tampered["tier"] == "contraindicated"
    assert tampered["certificate_issued"] is False
    assert tampered["measured_before"] != tampered["measured_after"]


def test_revoked_device_cut_off_others_served(report: dict[str, Any]) -> None:
    revocation = step(report, "revocation")
    assert revocation["ueid"] == step(report, "onboarding")["devices"][0]["ueid"]
    assert revocation["refused"] is True
    assert revocation["refusal"]["status"] == "PERMISSION_DENIED"
    assert revocation["refusal"]["error"] == "RevokedError"
    assert "revoked" in revocation["refusal"]["message"]
    assert revocation["agent_learned_ms"] <= 2000
    served = revocation["others_served"]
    assert [s["device"] for s in served] == [
        d["name"] for d in step(report, "onboarding")["devices"][1:]
    ]
    assert all(s["backend"] == "remote" for s in served)


def test_everything_is_cleaned_up(run: tuple[dict[str, Any], Path]) -> None:
    report, tmp = run
    workdir = Path(report["workdir"])
    assert workdir.parent == tmp
    assert report["kept"] is False
    assert not workdir.exists()
    assert_closed(step(report, "verifier")["address"])
    assert_closed(step(report, "verifier")["feed_address"])
    assert_closed(step(report, "agent")["address"])


def test_story_is_narrated_for_people(tmp_path: Path) -> None:
    result = subprocess.run(
        [*EDGETRUST, "demo", "--devices", "1"],
        capture_output=True,
        text=True,
        env=_environment(tmp_path),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in range(1, 9):
        assert f"[{heading}/8]" in out
    for fact in (
        "UDS 0600",
        "EAR affirming",
        "spiffe://edgetrust.local/device/",
        "remote top-1 == local fp32 top-1 on 10/10",
        "refused: measurement_mismatch:firmware",
        "PERMISSION_DENIED",
        "working directory removed",
    ):
        assert fact in out, fact
    assert list(tmp_path.glob("edgetrust-demo-*")) == []  # (onnxruntime leaves a .ses file)


def test_keep_leaves_the_files_in_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = CliRunner().invoke(
        demo_cli, ["--workdir", str(workdir), "--keep", "--devices", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kept"] is True
    assert Path(report["workdir"]) == workdir.resolve()
    for path in (
        "factory/factory.json",
        "endorsements.json",
        "verifier/registry.db",
        "verifier/verifier.toml",
        "agent/agent.toml",
        "devices/device-000001/operational/cert.pem",
    ):
        assert (workdir / path).is_file(), path
    assert not (workdir / "devices/device-000002/operational").exists()  # the tampered one


def test_a_non_empty_workdir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("mine")
    result = CliRunner().invoke(demo_cli, ["--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]


def _fails_a_check(state: DemoState, log: StepLog) -> None:
    log.check("the tampered device is refused", False)


def _raises(state: DemoState, log: StepLog) -> None:
    raise ServiceError("the verifier went away")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (_fails_a_check, "expected: the tampered device is refused"),
        (_raises, "ServiceError: the verifier went away"),
    ],
)
def test_a_step_that_misbehaves_is_named_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: Any, problem: str
) -> None:
    steps = tuple(
        demo_story.Step(name=s.name, title=s.title, why=s.why, run=body)
        if s.name == "tampered"
        else s
        for s in demo_story.STEPS
    )
    monkeypatch.setattr(demo_story, "STEPS", steps)
    workdir = tmp_path / "demo"
    result = CliRunner().invoke(demo_cli, ["--workdir", str(workdir), "--devices", "1", "--json"])
    assert result.exit_code == 1
    assert f"error: demo step 'tampered' did not behave: {problem}" in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["failed_step"] == "tampered"
    assert report["problem"] == problem
    assert report["steps"]["classification"]["ok"] is True
    assert report["steps"]["tampered"]["ok"] is False
    assert report["steps"]["revocation"]["ok"] is None  # not run after a failure
    assert not workdir.exists()
    assert_closed(report["steps"]["agent"]["address"])  # stopped on the failure path too
    assert_closed(report["steps"]["verifier"]["address"])
