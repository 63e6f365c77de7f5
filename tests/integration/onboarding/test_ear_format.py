"""A verifier configured with ``[verifier] ear_format = "cwt"`` answers with CWT EARs: the device
stores one that verify_ear_cwt accepts with the verifier's EAR public key, refusals carry one in
the trailing metadata, and ``device onboard --json`` summarises it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edgetrust.attest.ear import verify_ear, verify_ear_cwt
from edgetrust.attest.reference import EndorsementBundle
from edgetrust.cli.evidence_ear import detect_ear
from edgetrust.cli.main import cli
from edgetrust.errors import EvidenceError
from edgetrust.onboarding.config import load_config
from edgetrust.onboarding.device import OPERATIONAL_EAR, SimulatedDevice
from edgetrust.onboarding.verifier_processes import verifier_settings
from tests.integration.onboarding.conftest import RunningVerifier, start_verifier
from tests.integration.onboarding.fleet import tamper


@pytest.fixture
def cwt_verifier(verifier_dir: Path, bundle: EndorsementBundle) -> Iterator[RunningVerifier]:
    """The test verifier with ``ear_format = "cwt"`` in its verifier.toml (read as serve does)."""
    path = verifier_dir / "verifier.toml"
    text = path.read_text()
    assert 'ear_format = "jwt"' in text
    path.write_text(text.replace('ear_format = "jwt"', 'ear_format = "cwt"'))
    settings = verifier_settings(load_config(path, env={}))
    assert settings.attestation.ear_format == "cwt"
    running = start_verifier(verifier_dir, bundle=bundle, attestation=settings.attestation)
    try:
        yield running
    finally:
        running.close()


def test_device_receives_a_cwt_ear(cwt_verifier: RunningVerifier, new_device: Any) -> None:
    device: SimulatedDevice = new_device()
    result = device.onboard(cwt_verifier.client())
    assert result.affirmed
    assert detect_ear(result.ear)[0] == "cwt"
    ear = verify_ear_cwt(result.ear, cwt_verifier.keys.ear_key.public_key())
    assert ear.affirming
    assert ear.status.label == "affirming"
    assert ear.ueid == device.ueid
    assert (device.operational_dir / OPERATIONAL_EAR).read_bytes() == result.ear
    with pytest.raises(EvidenceError):  # not a JWT any more
        verify_ear(result.ear, cwt_verifier.keys.ear_key.public_key())


def test_refusal_carries_a_cwt_ear(cwt_verifier: RunningVerifier, new_device: Any) -> None:
    device: SimulatedDevice = new_device()
    tamper(device.directory)
    result = device.onboard(cwt_verifier.client())
    assert not result.affirmed
    ear = verify_ear_cwt(result.ear, cwt_verifier.keys.ear_key.public_key())
    assert ear.status.label == "contraindicated"
    assert any(r.startswith("measurement_mismatch") for r in ear.reasons), ear.reasons


def test_device_onboard_json_summarises_the_cwt_ear(
    cwt_verifier: RunningVerifier, new_device: Any
) -> None:
    device: SimulatedDevice = new_device()
    root = cwt_verifier.directory
    outcome = CliRunner().invoke(
        cli,
        [
            "device", "onboard", str(device.directory), "--verifier", cwt_verifier.address,
            "--ca", str(root / "cluster-ca" / "root-cert.pem"),
            "--ear-key", str(root / "ear-public.pem"), "--json",
        ],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output)
    ear = report["ear"]
    assert (report["onboarded"], ear["status"], ear["verified"]) == (True, "affirming", True)
    assert ear["trust_vector"], ear
    # the stored EAR is the CWT the verifier signed
    stored = (device.operational_dir / OPERATIONAL_EAR).read_bytes()
    assert verify_ear_cwt(stored, cwt_verifier.keys.ear_key.public_key()).ueid == device.ueid
