"""``edgetrust agent init``: an agent directory from the verifier's cluster CA."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgetrust.certs.chain import validate_chain
from edgetrust.certs.loading import load_certificates
from edgetrust.cli.main import cli
from edgetrust.cli.reporting import run_guarded
from edgetrust.offload.config import AgentConfig
from tests.metrics_example import uncomment_metrics_example


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_guarded(cli, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def verifier_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, out, err = _run(
        capsys, "verifier", "init", str(tmp_path / "v"), "--trust-domain", "fleet.test",
        "--feed-listen", "127.0.0.1:7999", "--json",
    )  # fmt: skip
    assert code == 0, err
    return Path(json.loads(out)["config"])


def test_agent_init_writes_a_working_configuration(
    tmp_path: Path, verifier_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "agent"
    code, out, err = _run(
        capsys, "agent", "init", str(directory), "--verifier-config", str(verifier_config),
        "--listen", "127.0.0.1:0", "--dns-name", "agent.fleet.test", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["revocation_feed"] == "127.0.0.1:7999"
    assert stat.S_IMODE((directory / "agent.key").stat().st_mode) == 0o600

    config = AgentConfig.load(directory / "agent.toml", environ={})
    assert config.trust_domain == "fleet.test"
    assert config.listen == "127.0.0.1:0"
    assert config.revocation.feed == "127.0.0.1:7999"

    [cert] = load_certificates((directory / "agent.crt").read_bytes())
    anchors = load_certificates((directory / "cluster-ca.crt").read_bytes())
    chain = validate_chain([cert], anchors, datetime.now(UTC))
    assert chain.leaf == cert
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages  # it also follows the mTLS feed
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["agent.fleet.test"]


def test_agent_init_refuses_a_non_empty_directory(
    tmp_path: Path, verifier_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "agent"
    directory.mkdir()
    (directory / "keep.txt").write_text("mine")
    code, _, err = _run(
        capsys, "agent", "init", str(directory), "--verifier-config", str(verifier_config)
    )
    assert code == 2
    assert err.startswith("error: ")
    assert "not an empty directory" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]


def test_agent_init_needs_an_existing_verifier_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, "agent", "init", str(tmp_path / "a"), "--verifier-config", str(tmp_path / "no")
    )
    assert code == 2
    assert "does not exist" in err
    assert not (tmp_path / "a").exists()


def test_agent_init_shows_a_metrics_example_that_loads_when_uncommented(
    tmp_path: Path, verifier_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[metrics]`` is commented out (off by default, the file still loads); uncommented, the
    loaded configuration serves metrics on the example address."""
    directory = tmp_path / "agent"
    code, _, err = _run(
        capsys, "agent", "init", str(directory), "--verifier-config", str(verifier_config)
    )
    assert code == 0, err
    path = directory / "agent.toml"
    assert AgentConfig.load(path, environ={}).metrics_listen is None
    uncomment_metrics_example(path)
    config = AgentConfig.load(path, environ={})
    assert config.metrics_listen == "127.0.0.1:9464"
    assert config.trust_domain == "fleet.test"  # the other settings are untouched
    assert config.revocation.feed == "127.0.0.1:7999"
