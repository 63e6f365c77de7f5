"""``edgetrust verifier init/endorse`` and ``edgetrust device show`` through the CLI entry point:
files and JSON, exit codes, one-line errors (serve and onboard run as real processes in
tests/integration/onboarding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from edgetrust.certs.ca import CertificateAuthority
from edgetrust.cli.main import cli
from edgetrust.cli.reporting import run_guarded
from edgetrust.onboarding.store import SqlRegistryStore
from tests.integration.onboarding.fleet import Product, endorsements, make_device


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_guarded(cli, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_then_endorse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "verifier", "init", str(tmp_path / "v"), "--trust-domain", "fleet.test",
        "--listen", "127.0.0.1:0", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["trust_domain"] == "fleet.test"
    assert Path(report["cluster_ca"]).is_file()
    config = report["config"]

    bundle = tmp_path / "bundle.json"
    endorsements(CertificateAuthority.create(), [Product()]).save(bundle)
    code, out, err = _run(capsys, "verifier", "endorse", str(bundle), "--config", config)
    assert code == 0, err
    assert out.strip() == "endorsed edgetrust-sim (firmware 1.0.0)"
    with SqlRegistryStore(report["registry"], create=False) as store:
        [record] = store.list_endorsements()
    assert record.product == "edgetrust-sim"


def test_init_refuses_an_existing_verifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "verifier", "init", str(tmp_path / "v"))[0] == 0
    code, _, err = _run(capsys, "verifier", "init", str(tmp_path / "v"))
    assert code == 2
    assert err.startswith("error: ")
    assert "already holds a verifier" in err
    assert len(err.strip().splitlines()) == 1


def test_endorse_a_bad_bundle_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "verifier", "init", str(tmp_path / "v"))[0] == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "edgetrust-endorsements", "version": 9}')
    code, _, err = _run(
        capsys, "verifier", "endorse", str(bad), "--config", str(tmp_path / "v/verifier.toml")
    )
    assert code == 2
    assert err.startswith("error: ")


def test_serve_without_a_config_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGETRUST_VERIFIER_CONFIG", raising=False)
    code, _, err = _run(capsys, "verifier", "serve")
    assert code == 2
    assert "no --config given and no ./verifier.toml" in err


def test_device_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = make_device(tmp_path / "d", CertificateAuthority.create())
    code, out, err = _run(capsys, "device", "show", str(tmp_path / "d"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ueid"] == manifest.ueid.hex()
    assert [m["name"] for m in report["measurements"]] == [
        "bootloader", "firmware", "application", "model",
    ]  # fmt: skip
    assert report["operational_certificate"] is None


def test_device_onboard_unreachable_verifier_is_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = CertificateAuthority.create()
    make_device(tmp_path / "d", ca)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.anchor.public_bytes(serialization.Encoding.PEM))
    code, _, err = _run(
        capsys, "device", "onboard", str(tmp_path / "d"), "--verifier", "127.0.0.1:1",
        "--ca", str(ca_file), "--timeout", "2",
    )  # fmt: skip
    assert code == 3
    assert err.startswith("error: verifier answered UNAVAILABLE")
