"""The device directory (onboarding.device): manifest strictness, UDS protection, confinement of
image paths, and that tampering with any image changes what the device reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgetrust.certs.ca import CertificateAuthority
from edgetrust.errors import WorkspaceError
from edgetrust.onboarding.device import DeviceManifest, LayerFile, SimulatedDevice
from tests.integration.onboarding.fleet import make_device, tamper


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@pytest.fixture
def device_dir(tmp_path: Path, ca: CertificateAuthority) -> Path:
    path = tmp_path / "device"
    make_device(path, ca)
    return path


def _manifest(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((path / "device.json").read_text())
    return data


def test_manifest_round_trips(device_dir: Path) -> None:
    manifest = DeviceManifest.load(device_dir)
    assert DeviceManifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.hwmodel == manifest.product.encode()


def test_unknown_manifest_field_is_refused(device_dir: Path) -> None:
    data = _manifest(device_dir) | {"secure_boot_": False}
    with pytest.raises(WorkspaceError, match="unknown fields"):
        DeviceManifest.from_dict(data)


def test_wrong_manifest_format_is_refused(device_dir: Path) -> None:
    with pytest.raises(WorkspaceError, match="format must be"):
        DeviceManifest.from_dict(_manifest(device_dir) | {"version": 2})


def test_unknown_mode_is_refused(device_dir: Path) -> None:
    with pytest.raises(WorkspaceError, match="mode"):
        DeviceManifest.from_dict(_manifest(device_dir) | {"mode": "god"})


def test_duplicate_layer_names_are_refused() -> None:
    layer = LayerFile(name="fw", file="firmware/fw.bin", version="1", svn=0)
    with pytest.raises(WorkspaceError, match="unique"):
        DeviceManifest(ueid=b"\x01" * 33, product="p", firmware_version="1", layers=(layer, layer))


def test_negative_svn_is_refused() -> None:
    layer = LayerFile(name="fw", file="firmware/fw.bin", version="1", svn=-1)
    with pytest.raises(WorkspaceError, match="negative SVN"):
        DeviceManifest(ueid=b"\x01" * 33, product="p", firmware_version="1", layers=(layer,))


def test_uds_readable_by_others_is_refused(device_dir: Path) -> None:
    (device_dir / "uds.bin").chmod(0o644)
    with pytest.raises(WorkspaceError, match="readable by group or others"):
        SimulatedDevice.open(device_dir)


def test_uds_of_the_wrong_size_is_refused(device_dir: Path) -> None:
    uds = device_dir / "uds.bin"
    uds.write_bytes(uds.read_bytes() + b"x")
    with pytest.raises(WorkspaceError, match="32 bytes"):
        SimulatedDevice.open(device_dir)


def test_manifest_for_another_uds_is_refused(device_dir: Path) -> None:
    data = _manifest(device_dir) | {"ueid": "01" + "00" * 32}
    (device_dir / "device.json").write_text(json.dumps(data))
    with pytest.raises(WorkspaceError, match="the UDS derives UEID"):
        SimulatedDevice.open(device_dir)


def test_image_path_outside_the_directory_is_refused(device_dir: Path) -> None:
    data = _manifest(device_dir)
    layers = data["layers"]
    assert isinstance(layers, list)
    layers[0]["file"] = "../../etc/passwd"
    (device_dir / "device.json").write_text(json.dumps(data))
    with pytest.raises(WorkspaceError, match="outside the device directory"):
        SimulatedDevice.open(device_dir).boot()


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no such device directory"):
        SimulatedDevice.open(tmp_path / "nope")


@pytest.mark.parametrize("layer", ["bootloader", "firmware", "application"])
def test_tampering_any_layer_changes_the_evidence(device_dir: Path, layer: str) -> None:
    device = SimulatedDevice.open(device_dir)
    before = device.boot()
    tamper(device_dir, layer)
    after = device.boot()
    changed = [a.name for a, b in zip(before.measurements, after.measurements, strict=True)
               if a.digest != b.digest]  # fmt: skip
    assert changed == [layer]
    # The alias key of the tampered layer and every later one changes: so does the leaf.
    assert before.chain[0].public_key() != after.chain[0].public_key()
    assert before.chain[-1] == after.chain[-1]  # the DeviceID certificate does not


def test_boot_is_deterministic(device_dir: Path) -> None:
    device = SimulatedDevice.open(device_dir)
    first, second = device.boot(), device.boot()
    # Same keys and names every boot (ECDSA signatures themselves are randomised).
    assert [c.public_key() for c in first.chain] == [c.public_key() for c in second.chain]
    assert [c.subject for c in first.chain] == [c.subject for c in second.chain]
    assert first.measurements == second.measurements
