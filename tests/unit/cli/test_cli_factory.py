"""``edgetrust factory init / provision / export-endorsements`` through click's CliRunner."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest.appraisal import appraise
from edgetrust.attest.reference import EndorsementBundle
from edgetrust.certs.loading import read_certificate, read_private_key
from edgetrust.cli.main import cli
from edgetrust.onboarding.attestation import EndorsementSet
from edgetrust.onboarding.config import load_config
from edgetrust.onboarding.device import DeviceManifest, SimulatedDevice
from edgetrust.onboarding.factory_output import device_name, read_journal
from edgetrust.onboarding.store import SqlRegistryStore

NONCE = bytes(range(32))


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["factory", *map(str, args)])
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def one_line_error(code: int, stderr: str, text: str) -> None:
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert text in lines[0]


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "factory"
    code, _, stderr = invoke("init", path)
    assert code == 0, stderr
    return path


# ---- init ----------------------------------------------------------------------------------------


def test_init(tmp_path: Path) -> None:
    path = tmp_path / "f"
    code, out, _ = invoke("init", path, "--product", "cam", "--product", "gate", "--org", "Acme")
    assert code == 0
    assert "root CA" in out
    assert "CN=Acme manufacturer root CA,O=Acme" in out
    assert "keep it offline" in out
    for key in ("root-key.pem", "intermediate-key.pem"):
        assert stat.S_IMODE((path / "ca" / key).stat().st_mode) == 0o600
    config = json.loads((path / "factory.json").read_text())
    assert [p["name"] for p in config["products"]] == ["cam", "gate"]
    assert config["organization"] == "Acme"


def test_init_json_and_options(tmp_path: Path) -> None:
    code, out, _ = invoke(
        "init", tmp_path / "f", "--no-intermediate", "--key-alg", "p384", "--json"
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["intermediate"] is None
    assert summary["products"] == [{"name": "edgetrust-sim", "firmware_version": "1.0.0"}]
    assert not (tmp_path / "f" / "ca" / "intermediate-key.pem").exists()
    key = read_private_key(tmp_path / "f" / "ca" / "root-key.pem")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"


def test_init_refuses_overwrite_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert invoke("init", path)[0] == 0
    root = read_certificate(path / "ca" / "root-cert.pem")
    code, _, stderr = invoke("init", path)
    one_line_error(code, stderr, "already holds a factory workspace")
    assert read_certificate(path / "ca" / "root-cert.pem") == root
    assert invoke("init", path, "--force")[0] == 0
    assert read_certificate(path / "ca" / "root-cert.pem") != root


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--key-alg", "rsa"], "--key-alg must be p256 or p384"),
        (["--product", "bad/name"], "is not a valid name"),
    ],
)
def test_init_bad_input(tmp_path: Path, args: list[str], text: str) -> None:
    code, _, stderr = invoke("init", tmp_path / "f", *args)
    one_line_error(code, stderr, text)


# ---- provision -----------------------------------------------------------------------------------


def test_provision(factory: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = invoke(
        "provision", "--factory", factory, "--count", "5", "--out", out, "--jobs", "1"
    )
    assert code == 0, stderr
    assert "provisioned 5 devices of edgetrust-sim firmware 1.0.0" in stdout
    assert "devices/s" in stdout
    assert f"{out}/device-000001 .. device-000005" in stdout
    assert "provisioned 5/5 devices (100%)" in stderr  # plain progress lines off a terminal
    assert sorted(read_journal(out, count=5)) == [1, 2, 3, 4, 5]
    code, stdout, _ = invoke(
        "provision", "--factory", factory, "--count", "5", "--out", out, "--quiet"
    )
    assert code == 0
    assert "resumed: 5 devices were already done" in stdout


def test_provision_json_with_images(factory: Path, tmp_path: Path) -> None:
    image = tmp_path / "model.bin"
    image.write_bytes(b"a better model")
    out = tmp_path / "out"
    code, stdout, stderr = invoke(
        "provision",
        "--factory",
        factory,
        "--count",
        "2",
        "--out",
        out,
        "--component",
        f"model={image}",
        "--firmware-version",
        "1.0.1",
        "--mode",
        "debug",
        "--json",
        "--quiet",
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["provisioned"] == 2
    assert report["firmware_version"] == "1.0.1"
    assert report["release_recorded"] is True
    assert stderr == ""
    device = out / device_name(1, 2)
    assert (device / "components" / "model.bin").read_bytes() == b"a better model"
    manifest = DeviceManifest.load(device)
    assert (manifest.mode, manifest.firmware_version) == ("debug", "1.0.1")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--count", "0"], "--count must be at least 1"),
        (["--count", "-5"], "--count must be at least 1"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--mode", "turbo"], "--mode must be one of normal, debug"),
        (["--product", "toaster"], "unknown product 'toaster'"),
        (["--firmware", "bootloader"], "--firmware expects NAME=FILE, got 'bootloader'"),
        (["--firmware", "=x.bin"], "--firmware expects NAME=FILE"),
        (["--firmware", "bootloader="], "--firmware expects NAME=FILE"),
        (["--component", "model"], "--component expects NAME=FILE"),
        (["--firmware", "kernel=/etc/hostname"], "has no layer 'kernel'"),
        (["--firmware", "bootloader=/nonexistent.bin"], "cannot read firmware file"),
        (["--firmware", "firmware=/etc/hostname"], "already released with other images"),
    ],
)
def test_provision_bad_input(factory: Path, tmp_path: Path, args: list[str], text: str) -> None:
    base = ["--factory", factory, "--count", "2", "--out", tmp_path / "out", "--quiet"]
    code, stdout, stderr = invoke("provision", *base, *args)
    one_line_error(code, stderr, text)
    assert stdout == ""
    assert not (tmp_path / "out").exists()


def test_provision_without_a_workspace(tmp_path: Path) -> None:
    code, _, stderr = invoke(
        "provision", "--factory", tmp_path, "--count", "1", "--out", tmp_path / "o"
    )
    one_line_error(code, stderr, "not a factory workspace")


def test_provision_other_batch_in_out(factory: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = ["--factory", factory, "--out", out, "--quiet"]
    assert invoke("provision", *base, "--count", "1")[0] == 0
    code, _, stderr = invoke("provision", *base, "--count", "2")
    one_line_error(code, stderr, "holds a batch with another count")


# ---- export-endorsements -------------------------------------------------------------------------


def test_export_to_stdout_and_file(factory: Path, tmp_path: Path) -> None:
    code, stdout, _ = invoke("export-endorsements", "--factory", factory)
    assert code == 0
    bundle = EndorsementBundle.from_json(stdout)
    assert bundle.anchors == (read_certificate(factory / "ca" / "root-cert.pem"),)
    assert bundle.reference_values.product_named("edgetrust-sim") is not None
    path = tmp_path / "endorsements.json"
    code, stdout, _ = invoke(
        "export-endorsements", "--factory", factory, "--out", path, "--include-intermediate"
    )
    assert code == 0
    assert "wrote 2 trust anchor(s)" in stdout
    assert "edgetrust-sim 1.0.0" in stdout
    assert len(EndorsementBundle.load(path).anchors) == 2


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--product", "toaster"], "unknown product 'toaster'"),
        (["--out", "/nonexistent/dir/e.json"], "cannot write"),
    ],
)
def test_export_bad_input(factory: Path, args: list[str], text: str) -> None:
    code, _, stderr = invoke("export-endorsements", "--factory", factory, *args)
    one_line_error(code, stderr, text)


def test_export_without_a_workspace(tmp_path: Path) -> None:
    code, _, stderr = invoke("export-endorsements", "--factory", tmp_path)
    one_line_error(code, stderr, "not a factory workspace")


def test_verifier_imports_what_the_factory_exports(tmp_path: Path) -> None:
    """factory export-endorsements -> verifier endorse -> the verifier's endorsement cache ->
    appraisal of a provisioned device: affirming; a tampered layer: contraindicated."""
    factory, out = tmp_path / "factory", tmp_path / "out"
    assert invoke("init", factory)[0] == 0
    assert (
        invoke("provision", "--factory", factory, "--count", "2", "--out", out, "--quiet")[0] == 0
    )
    bundle_file = tmp_path / "endorsements.json"
    assert invoke("export-endorsements", "--factory", factory, "--out", bundle_file)[0] == 0
    runner = CliRunner()
    verifier = tmp_path / "verifier"
    assert runner.invoke(cli, ["verifier", "init", str(verifier)]).exit_code == 0
    config = verifier / "verifier.toml"
    result = runner.invoke(cli, ["verifier", "endorse", str(bundle_file), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "endorsed edgetrust-sim (firmware 1.0.0)" in result.stdout

    with SqlRegistryStore(load_config(config).database_url) as store:
        endorsements = EndorsementSet.from_records(store.list_endorsements())
    tampered = out / device_name(2, 2) / "firmware" / "firmware.bin"
    tampered.write_bytes(tampered.read_bytes() + b"\x00")
    for index, affirmed in ((1, True), (2, False)):
        device = SimulatedDevice.open(out / device_name(index, 2))
        state = device.boot()
        now = dt.datetime.now(dt.UTC)
        token = device.evidence(
            state, nonce=NONCE, tls_key=ec.generate_private_key(ec.SECP256R1()), now=now
        )
        references, anchors = endorsements.scope(device.manifest.hwmodel)
        verdict = appraise(
            chain_certs=state.chain,
            token=token,
            anchors=anchors,
            reference_values=references,
            expected_nonce=NONCE,
            now=now,
        )
        assert verdict.affirming is affirmed, verdict.reasons
        if not affirmed:
            assert "measurement_mismatch:firmware" in verdict.reasons
            assert "fwid_mismatch:firmware" in verdict.reasons
