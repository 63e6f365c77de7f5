"""The whole story with the real factory: provision a fleet, export and import the endorsements,
onboard every device; a tampered device and a revoked device are refused; and the device command
(`edgetrust device onboard`) exits 0 with the certificate written or 1 with the reasons.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgetrust.onboarding.device import SimulatedDevice
from edgetrust.onboarding.factory import FactoryWorkspace
from edgetrust.onboarding.factory_batch import provision_batch
from tests.integration.onboarding.conftest import RunningVerifier, start_verifier
from tests.integration.onboarding.fleet import tamper

FLEET = 10
EDGETRUST = Path(sys.executable).with_name("edgetrust")


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> tuple[FactoryWorkspace, Path]:
    root = tmp_path_factory.mktemp("factory")
    workspace = FactoryWorkspace.create(root / "factory")
    report = provision_batch(workspace, out=root / "fleet", count=FLEET)
    assert report.provisioned == FLEET
    return workspace, root / "fleet"


@pytest.fixture
def fleet(factory: tuple[FactoryWorkspace, Path], tmp_path: Path) -> list[Path]:
    """A private copy of the provisioned devices (tests write operational/ and tamper)."""
    import shutil

    source = factory[1]
    target = tmp_path / "fleet"
    shutil.copytree(source, target)
    return sorted(p for p in target.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture
def factory_verifier(
    verifier_dir: Path, factory: tuple[FactoryWorkspace, Path]
) -> Iterator[RunningVerifier]:
    running = start_verifier(verifier_dir, bundle=factory[0].endorsements())
    try:
        yield running
    finally:
        running.close()


def test_factory_fleet_onboards_and_bad_devices_are_refused(
    factory_verifier: RunningVerifier, fleet: list[Path]
) -> None:
    verifier = factory_verifier
    client = verifier.client()
    devices = [SimulatedDevice.open(p) for p in fleet]
    tampered, revoked, *good = devices
    tamper(tampered.directory, "firmware")

    results = {d.ueid: d.onboard(client) for d in [revoked, *good]}
    assert all(r.affirmed for r in results.values()), results
    verifier.store.revoke_device(revoked.ueid, reason="stolen", actor="test", now=datetime.now(UTC))

    bad = tampered.onboard(client)
    assert not bad.affirmed
    assert bad.reasons == ("measurement_mismatch:firmware", "fwid_mismatch:firmware")
    again = revoked.onboard(client, store=False)
    assert not again.affirmed
    assert again.reasons == ("device_revoked",)

    onboarded = {d.ueid.hex() for d in verifier.store.list_devices()}
    assert onboarded == {d.ueid.hex() for d in [revoked, *good]}
    assert tampered.ueid.hex() not in onboarded
    for device in good:
        assert device.operational_certificate() == results[device.ueid].certificate


def test_device_command_exit_codes(factory_verifier: RunningVerifier, fleet: list[Path]) -> None:
    verifier = factory_verifier
    ca_file = verifier.directory / "cluster-ca" / "root-cert.pem"
    base = [str(EDGETRUST), "device", "onboard"]
    target = ["--verifier", verifier.address, "--ca", str(ca_file)]

    ok = subprocess.run(
        [*base, str(fleet[0]), *target, "--json", "--ear-key",
         str(verifier.directory / "ear-public.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["onboarded"] is True
    assert report["ear"]["status"] == "affirming"
    assert report["ear"]["verified"] is True
    assert report["spiffe_id"].startswith("spiffe://fleet.test/device/")
    assert Path(report["certificate"]).is_file()

    tamper(fleet[1], "bootloader")
    refused = subprocess.run(
        [*base, str(fleet[1]), *target], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "refused: measurement_mismatch:bootloader; fwid_mismatch:bootloader"
    )
    assert not (fleet[1] / "operational").exists()
