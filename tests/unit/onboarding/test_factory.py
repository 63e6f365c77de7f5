"""The factory: workspace, batch provisioning (layout, identities, resumption), endorsements.

The endorsement round trip boots a provisioned device directory with the simulated device of
:mod:`edgetrust.onboarding.device` (UDS -> DICE layers -> alias certificates -> EAT signed by the
leaf key) and appraises its evidence against the exported bundle with
:func:`edgetrust.attest.appraisal.appraise`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest.appraisal import appraise
from edgetrust.attest.ear import Tier
from edgetrust.attest.identity import DeviceIdentity
from edgetrust.attest.reference import DebugPolicy, EndorsementBundle, SecureBootPolicy
from edgetrust.certs.chain import validate_chain
from edgetrust.certs.keys import certificate_public_key, public_key_bytes
from edgetrust.certs.loading import read_certificates
from edgetrust.errors import ConfigError, WorkspaceError
from edgetrust.onboarding.device import DeviceManifest, SimulatedDevice, layer_files
from edgetrust.onboarding.factory import FactoryWorkspace
from edgetrust.onboarding.factory_batch import provision_batch
from edgetrust.onboarding.factory_config import demo_image
from edgetrust.onboarding.factory_output import (
    BATCH_FILE,
    JOURNAL_FILE,
    LOCK_FILE,
    PARTIAL_DIR,
    ProvisionedDevice,
    device_name,
    flush_filesystem,
    read_journal,
)

ROOT = Path(__file__).resolve().parents[3]
NONCE = bytes(range(32))


@pytest.fixture
def workspace(tmp_path: Path) -> FactoryWorkspace:
    return FactoryWorkspace.create(tmp_path / "factory")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _device_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.name.startswith("device-"))


# ---- a device booting from its directory -------------------------------------------------------


def boot_evidence(
    device_dir: Path, *, now: dt.datetime, omit_intermediate: bool = False
) -> tuple[list[x509.Certificate], bytes]:
    """(chain, EAT) of the device in ``device_dir``, made by the simulated device itself."""
    device = SimulatedDevice.open(device_dir)
    state = device.boot()
    tls_key = ec.generate_private_key(ec.SECP256R1())
    token = device.evidence(state, nonce=NONCE, tls_key=tls_key, now=now)
    chain = list(state.chain)  # aliases (leaf first), DeviceID, intermediate
    if omit_intermediate:
        chain = chain[: len(device.manifest.layers) + 1]
    return chain, token


def appraise_dir(device_dir: Path, bundle: EndorsementBundle, **kw: Any) -> Any:
    now = _now()
    chain, token = boot_evidence(device_dir, now=now, **kw)
    return appraise(
        chain_certs=chain,
        token=token,
        anchors=bundle.anchors,
        reference_values=bundle.reference_values,
        expected_nonce=NONCE,
        now=now,
    )


# ---- workspace -----------------------------------------------------------------------------------


def test_create_writes_the_workspace(workspace: FactoryWorkspace) -> None:
    path = workspace.path
    assert _mode(path) == 0o700
    for name in ("root-key.pem", "intermediate-key.pem"):
        assert _mode(path / "ca" / name) == 0o600
    assert (path / "ca" / "root-cert.pem").is_file()
    config = json.loads((path / "factory.json").read_text())
    assert config["format"] == "edgetrust-factory"
    assert config["version"] == 1
    product = config["products"][0]
    assert product["name"] == "edgetrust-sim"
    assert [x["name"] for x in product["layers"]] == ["bootloader", "firmware"]
    assert all({"name", "version", "svn", "image"} <= set(x) for x in product["layers"])
    image = path / product["layers"][0]["image"]
    assert image.read_bytes() == demo_image("edgetrust-sim", "bootloader", "1.0.0")
    assert (path / "releases" / "edgetrust-sim" / "1.0.0.json").is_file()
    loaded = FactoryWorkspace.load(path)
    assert loaded.config == workspace.config
    assert len(workspace.config.oemid) == 16
    ca = loaded.certificate_authority()
    assert ca.intermediate is not None
    assert ca.issuer.certificate.issuer == ca.root_certificate.subject


def test_demo_images_are_deterministic(tmp_path: Path) -> None:
    one = FactoryWorkspace.create(tmp_path / "a")
    two = FactoryWorkspace.create(tmp_path / "b")
    assert one.releases() == two.releases()
    assert one.root_certificate() != two.root_certificate()


def test_create_refuses_an_existing_workspace(workspace: FactoryWorkspace) -> None:
    before = (workspace.path / "ca" / "root-cert.pem").read_bytes()
    with pytest.raises(WorkspaceError, match="already holds a factory workspace"):
        FactoryWorkspace.create(workspace.path)
    assert (workspace.path / "ca" / "root-cert.pem").read_bytes() == before


def test_create_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match="not empty"):
        FactoryWorkspace.create(tmp_path / "x")


def test_create_force_replaces_the_workspace(workspace: FactoryWorkspace) -> None:
    old_root = workspace.root_certificate()
    new = FactoryWorkspace.create(workspace.path, force=True, products=["gadget"])
    assert new.root_certificate() != old_root
    assert [p.name for p in FactoryWorkspace.load(workspace.path).config.products] == ["gadget"]
    assert not (workspace.path / "releases" / "edgetrust-sim").exists()
    assert not list(workspace.path.parent.glob(".factory.*"))  # no staging left behind


def test_root_key_can_go_offline(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    """With an intermediate, provisioning and the export never need the root key."""
    offline = tmp_path / "vault-root-key.pem"
    (workspace.ca_dir / "root-key.pem").rename(offline)
    assert workspace.certificate_authority().root_key is None
    provision_batch(workspace, out=tmp_path / "out", count=2)
    bundle = workspace.endorsements()
    assert appraise_dir(tmp_path / "out" / device_name(1, 2), bundle).affirming


def test_create_without_intermediate(tmp_path: Path) -> None:
    workspace = FactoryWorkspace.create(tmp_path / "f", intermediate=False, key_alg="p384")
    assert workspace.intermediate_certificate() is None
    assert workspace.certificate_authority().root_key is not None
    report = provision_batch(workspace, out=tmp_path / "out", count=2)
    assert report.provisioned == 2
    certs = read_certificates(tmp_path / "out" / device_name(1, 2) / "device-id.pem")
    assert len(certs) == 1
    validate_chain(certs, [workspace.root_certificate()], _now())


def test_create_rejects_bad_product_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid name"):
        FactoryWorkspace.create(tmp_path / "f", products=["../evil"])
    with pytest.raises(ConfigError, match="named twice"):
        FactoryWorkspace.create(tmp_path / "g", products=["a", "a"])


def test_load_missing_workspace(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not a factory workspace"):
        FactoryWorkspace.load(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(produkts=[]), r"factory\.json\.produkts: unknown field"),
        (lambda c: c["products"][0].update(svn_minn={}), r"svn_minn: unknown field"),
        (lambda c: c.update(version=2), "unsupported"),
        (lambda c: c["products"][0]["layers"][0].update(svn=-1), "svn must be"),
        (lambda c: c["products"][0].update(svn_min={"nope": 1}), "unknown layer"),
        (lambda c: c.update(oemid="zz"), "hexadecimal"),
        (lambda c: c.update(device_key_alg="rsa"), "p256 or ed25519"),
    ],
)
def test_load_rejects_bad_configuration(
    workspace: FactoryWorkspace, edit: Any, message: str
) -> None:
    config = json.loads(workspace.config_file.read_text())
    edit(config)
    workspace.config_file.write_text(json.dumps(config))
    with pytest.raises(WorkspaceError, match=message):
        FactoryWorkspace.load(workspace.path)


def test_load_rejects_duplicate_keys_and_bad_json(workspace: FactoryWorkspace) -> None:
    workspace.config_file.write_text('{"format": "a", "format": "b"}')
    with pytest.raises(WorkspaceError, match="duplicate JSON key"):
        FactoryWorkspace.load(workspace.path)
    workspace.config_file.write_text("{")
    with pytest.raises(WorkspaceError, match="not valid JSON"):
        FactoryWorkspace.load(workspace.path)


def test_image_paths_stay_inside_the_workspace(workspace: FactoryWorkspace) -> None:
    config = json.loads(workspace.config_file.read_text())
    config["products"][0]["layers"][0]["image"] = "../../etc/passwd"
    workspace.config_file.write_text(json.dumps(config))
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        FactoryWorkspace.load(workspace.path).firmware_images()


# ---- provisioning: layout and identities --------------------------------------------------------


def test_provision_writes_the_device_layout(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = provision_batch(workspace, out=out, count=12)
    assert (report.provisioned, report.already_done, report.discarded) == (12, 0, 0)
    assert _mode(out) == 0o700
    devices = _device_dirs(out)
    assert [d.name for d in devices] == [device_name(i, 12) for i in range(1, 13)]
    journal = read_journal(out, count=12)
    anchors = [workspace.root_certificate()]
    images = workspace.firmware_images()
    ueids, secrets_seen = set(), set()
    for index, directory in enumerate(devices, start=1):
        assert _mode(directory) == 0o700
        uds = directory / "uds.bin"
        assert _mode(uds) == 0o600
        assert len(uds.read_bytes()) == 32
        manifest = DeviceManifest.load(directory)
        assert manifest.product == "edgetrust-sim"
        assert manifest.firmware_version == "1.0.0"
        assert manifest.oemid == workspace.config.oemid
        assert (manifest.mode, manifest.key_alg, manifest.secure_boot) == ("normal", "p256", True)
        for (definition, data), (layer, on_disk) in zip(
            images.layers, layer_files(directory, manifest), strict=True
        ):
            assert (layer.name, layer.version, layer.svn) == (
                definition.name,
                definition.version,
                definition.svn,
            )
            assert on_disk == data
        for (definition, data), component in zip(
            images.components, manifest.components, strict=True
        ):
            assert component.name == definition.name
            assert (directory / component.file).read_bytes() == data
        # The DeviceID certificate chains to the manufacturer root and names the device.
        certs = read_certificates(directory / "device-id.pem")
        assert len(certs) == 2  # DeviceID, intermediate; the root is the verifier's anchor
        chain = validate_chain(certs, anchors, _now())
        assert chain.ueid is not None
        assert chain.ueid.value == manifest.ueid
        identity = DeviceIdentity.from_uds(uds.read_bytes())
        assert identity.ueid == manifest.ueid
        assert public_key_bytes(certificate_public_key(certs[0])) == identity.device_id_public_key
        assert certs[0].serial_number == int.from_bytes(identity.device_id, "big")
        assert journal[index] == ProvisionedDevice(
            index=index,
            name=directory.name,
            ueid=manifest.ueid,
            serial=certs[0].serial_number,
        )
        ueids.add(manifest.ueid)
        secrets_seen.add(uds.read_bytes())
    assert len(ueids) == len(secrets_seen) == 12
    # The factory keeps no copy of any UDS: only the device directories hold them.
    everything_else = b"".join(
        p.read_bytes() for p in [*workspace.path.rglob("*"), *out.iterdir()] if p.is_file()
    )
    for uds in secrets_seen:
        assert uds not in everything_else
        assert uds.hex().encode() not in everything_else
    assert not os.listdir(out / PARTIAL_DIR)


def test_provision_with_worker_processes(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen: list[int] = []
    report = provision_batch(
        workspace, out=out, count=80, jobs=2, progress=lambda done, total: seen.append(done)
    )
    assert report.provisioned == 80
    journal = read_journal(out, count=80)
    assert sorted(journal) == list(range(1, 81))
    assert len({d.ueid for d in journal.values()}) == 80
    assert len(_device_dirs(out)) == 80
    assert seen[0] == 0
    assert seen[-1] == 80
    assert seen == sorted(seen)


def test_provision_debug_mode_is_recorded(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    provision_batch(workspace, out=tmp_path / "out", count=1, mode="debug")
    assert DeviceManifest.load(tmp_path / "out" / device_name(1, 1)).mode == "debug"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"count": 0}, ConfigError, "count must be a positive integer"),
        ({"count": -3}, ConfigError, "count must be a positive integer"),
        ({"jobs": 0}, ConfigError, "jobs must be a positive integer"),
        ({"mode": "turbo"}, ConfigError, "mode must be one of"),
        ({"product": "toaster"}, ConfigError, "unknown product 'toaster'"),
        ({"firmware": {"kernel": "x"}}, ConfigError, "has no layer 'kernel'"),
        ({"components": {"gpu": "x"}}, ConfigError, "has no component 'gpu'"),
        ({"firmware": {"bootloader": "/nonexistent/bl.bin"}}, ConfigError, "cannot read"),
        ({"firmware_version": "1 0"}, ConfigError, "not a valid version"),
    ],
)
def test_provision_rejects_bad_input(
    workspace: FactoryWorkspace, tmp_path: Path, kwargs: dict[str, Any], error: type, message: str
) -> None:
    arguments: dict[str, Any] = {"count": 2} | kwargs
    with pytest.raises(error, match=message):
        provision_batch(workspace, out=tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


# ---- firmware releases ---------------------------------------------------------------------------


def test_new_images_need_a_new_firmware_version(
    workspace: FactoryWorkspace, tmp_path: Path
) -> None:
    image = tmp_path / "bootloader-1.1.bin"
    image.write_bytes(b"bootloader 1.1")
    with pytest.raises(ConfigError, match="already released with other images"):
        provision_batch(workspace, out=tmp_path / "a", count=1, firmware={"bootloader": image})
    assert not (tmp_path / "a").exists()
    report = provision_batch(
        workspace,
        out=tmp_path / "b",
        count=1,
        firmware={"bootloader": image},
        firmware_version="1.1.0",
    )
    assert report.release_recorded
    device = tmp_path / "b" / device_name(1, 1)
    assert (device / "firmware" / "bootloader.bin").read_bytes() == b"bootloader 1.1"
    assert DeviceManifest.load(device).firmware_version == "1.1.0"
    versions = [(r.product, r.firmware_version) for r in workspace.releases()]
    assert versions == [("edgetrust-sim", "1.0.0"), ("edgetrust-sim", "1.1.0")]
    again = provision_batch(
        workspace,
        out=tmp_path / "c",
        count=1,
        firmware={"bootloader": image},
        firmware_version="1.1.0",
    )
    assert not again.release_recorded


# ---- resumption ----------------------------------------------------------------------------------


class _StopError(Exception):
    pass


def _stop_after(limit: int) -> Any:
    def progress(done: int, total: int) -> None:
        if done >= limit:
            raise _StopError

    return progress


def _check_complete(workspace: FactoryWorkspace, out: Path, count: int, *, sample: int) -> None:
    """Exactly ``count`` distinct, whole devices; the journal lists each once."""
    journal = read_journal(out, count=count)
    assert sorted(journal) == list(range(1, count + 1))
    assert [d.name for d in _device_dirs(out)] == [device_name(i, count) for i in sorted(journal)]
    assert len({d.ueid for d in journal.values()}) == count
    assert not os.listdir(out / PARTIAL_DIR)
    step = max(1, count // sample)
    for index in range(1, count + 1):
        directory = out / device_name(index, count)
        assert len((directory / "uds.bin").read_bytes()) == 32
        manifest = DeviceManifest.load(directory)
        assert manifest.ueid == journal[index].ueid
        if index % step == 0:
            certs = read_certificates(directory / "device-id.pem")
            chain = validate_chain(certs, [workspace.root_certificate()], _now())
            assert chain.ueid is not None
            assert chain.ueid.value == manifest.ueid
            assert DeviceIdentity.from_uds((directory / "uds.bin").read_bytes()).ueid == (
                manifest.ueid
            )


def test_resume_after_a_failure(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(_StopError):
        provision_batch(workspace, out=out, count=70, progress=_stop_after(32))
    first = read_journal(out, count=70)
    assert len(first) == 32  # made before the failure, checkpointed on the way out
    # What a crash leaves behind: a half-written device, a device renamed into place but not
    # yet journaled, a torn journal line.
    half = out / PARTIAL_DIR / device_name(40, 70)
    half.mkdir()
    (half / "uds.bin").write_bytes(b"half")
    orphan = out / device_name(50, 70)
    orphan.mkdir()
    (orphan / "device.json").write_text("{}")
    with (out / JOURNAL_FILE).open("a") as journal:
        journal.write('{"n":50,"dir":"device-0000')
    report = provision_batch(workspace, out=out, count=70)
    assert (report.already_done, report.provisioned, report.discarded) == (32, 38, 2)
    _check_complete(workspace, out, 70, sample=10)
    second = read_journal(out, count=70)
    assert all(second[i] == first[i] for i in first)  # done devices are never redone
    assert (out / JOURNAL_FILE).read_bytes().endswith(b"\n")


def test_rerun_of_a_complete_batch_does_nothing(
    workspace: FactoryWorkspace, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    provision_batch(workspace, out=out, count=3)
    before = (out / JOURNAL_FILE).read_bytes()
    report = provision_batch(workspace, out=out, count=3, jobs=2)
    assert (report.provisioned, report.already_done, report.discarded) == (0, 3, 0)
    assert (out / JOURNAL_FILE).read_bytes() == before


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"count": 4}, "count"),
        ({"mode": "debug"}, "mode"),
        ({"firmware_version": "2.0.0"}, "firmware_version"),
    ],
)
def test_rerun_with_other_parameters_is_refused(
    workspace: FactoryWorkspace, tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    out = tmp_path / "out"
    provision_batch(workspace, out=out, count=3)
    arguments: dict[str, Any] = {"count": 3} | kwargs
    with pytest.raises(WorkspaceError, match=f"holds a batch with another {field}"):
        provision_batch(workspace, out=out, **arguments)


def test_rerun_from_another_factory_is_refused(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    provision_batch(workspace, out=out, count=1)
    other = FactoryWorkspace.create(tmp_path / "other")
    with pytest.raises(WorkspaceError, match="another factory_root"):
        provision_batch(other, out=out, count=1)


def test_out_must_be_empty_or_a_batch(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "photos").mkdir()
    with pytest.raises(WorkspaceError, match="not empty and holds no batch"):
        provision_batch(workspace, out=out, count=1)


def test_one_run_per_output_directory(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(WorkspaceError, match="another provisioning run"):
            provision_batch(workspace, out=out, count=1)
    finally:
        os.close(fd)
    assert provision_batch(workspace, out=out, count=1).provisioned == 1


def test_damaged_journal_is_refused(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    provision_batch(workspace, out=out, count=3)
    lines = (out / JOURNAL_FILE).read_text().splitlines(keepends=True)
    (out / JOURNAL_FILE).write_text(lines[0] + "garbage\n" + "".join(lines[1:]))
    with pytest.raises(WorkspaceError, match="line 2 is damaged"):
        provision_batch(workspace, out=out, count=3)


def test_journal_listing_twice_is_refused(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    provision_batch(workspace, out=out, count=2)
    text = (out / JOURNAL_FILE).read_text()
    (out / JOURNAL_FILE).write_text(text + text.splitlines(keepends=True)[0])
    with pytest.raises(WorkspaceError, match="listed twice"):
        provision_batch(workspace, out=out, count=2)


def test_missing_done_device_is_refused(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    provision_batch(workspace, out=out, count=2)
    for item in (out / device_name(2, 2)).rglob("*"):
        if item.is_file():
            item.unlink()
    for item in sorted((out / device_name(2, 2)).rglob("*"), reverse=True):
        item.rmdir()
    (out / device_name(2, 2)).rmdir()
    with pytest.raises(WorkspaceError, match="journal lists device-000002 but its directory"):
        provision_batch(workspace, out=out, count=2)


def test_flush_filesystem(tmp_path: Path) -> None:
    flush_filesystem(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="cannot open to flush"):
        flush_filesystem(tmp_path / "file")


def test_batch_file_is_written_once(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    provision_batch(workspace, out=out, count=1)
    batch = json.loads((out / BATCH_FILE).read_text())
    assert batch["format"] == "edgetrust-factory-batch"
    assert batch["count"] == 1
    assert [i["name"] for i in batch["images"]] == [
        "bootloader",
        "firmware",
        "application",
        "model",
    ]


def test_resume_after_sigkill(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    """Kill a real provisioning process (and its workers) mid-batch; the re-run completes it."""
    out, count = tmp_path / "out", 400
    command = [
        sys.executable,
        "-c",
        "from edgetrust.cli.main import main; main()",
        "factory",
        "provision",
        "--factory",
        str(workspace.path),
        "--count",
        str(count),
        "--out",
        str(out),
        "--jobs",
        "2",
        "--quiet",
    ]
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and len(os.listdir(out)) > 60:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the batch ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        while True:  # the workers too
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
    killed = read_journal(out, count=count)
    assert len(killed) < count
    report = provision_batch(workspace, out=out, count=count, jobs=2)
    assert report.already_done == len(killed)
    assert report.provisioned == count - len(killed)
    _check_complete(workspace, out, count, sample=10)
    final = read_journal(out, count=count)
    assert all(final[i] == killed[i] for i in killed)


def test_interrupt_checkpoints_what_is_done(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the provisioning process): the devices made so far are journaled, the
    command says how far it got and exits 130; the re-run completes the batch."""
    out, count = tmp_path / "out", 400
    command = [
        sys.executable,
        "-c",
        "from edgetrust.cli.main import main; main()",
        "factory",
        "provision",
        "--factory",
        str(workspace.path),
        "--count",
        str(count),
        "--out",
        str(out),
        "--jobs",
        "2",
        "--quiet",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and len(os.listdir(out)) > 30:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the batch ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    done = read_journal(out, count=count)
    assert 0 < len(done) < count
    assert f"interrupted: {len(done)} of {count} devices are done" in stderr
    assert "Traceback" not in stderr
    report = provision_batch(workspace, out=out, count=count)
    assert (report.already_done, report.provisioned) == (len(done), count - len(done))
    _check_complete(workspace, out, count, sample=5)


# ---- endorsements --------------------------------------------------------------------------------


def test_export_round_trip_affirms_a_provisioned_device(
    workspace: FactoryWorkspace, tmp_path: Path
) -> None:
    provision_batch(workspace, out=tmp_path / "out", count=2)
    path = tmp_path / "endorsements.json"
    workspace.endorsements().save(path)
    bundle = EndorsementBundle.load(path)
    assert bundle.anchors == (workspace.root_certificate(),)
    product = bundle.reference_values.product_named("edgetrust-sim")
    assert product is not None
    assert product.oemid == workspace.config.oemid
    assert dict(product.svn_min) == {"bootloader": 1, "firmware": 1}
    firmware = product.firmware_version("1.0.0")
    assert firmware is not None
    assert firmware.debug is DebugPolicy.FORBIDDEN
    assert firmware.secure_boot is SecureBootPolicy.REQUIRED
    assert [(x.name, x.dice) for x in firmware.layers] == [
        ("bootloader", True),
        ("firmware", True),
        ("application", False),
        ("model", False),
    ]
    for index in (1, 2):
        result = appraise_dir(tmp_path / "out" / device_name(index, 2), bundle)
        assert result.status is Tier.AFFIRMING, result.reasons
        assert result.affirming
        assert result.reasons == ()


@pytest.mark.parametrize(
    ("relative", "reasons"),
    [
        ("firmware/firmware.bin", {"measurement_mismatch:firmware", "fwid_mismatch:firmware"}),
        (
            "firmware/bootloader.bin",
            {"measurement_mismatch:bootloader", "fwid_mismatch:bootloader"},
        ),
        ("components/model.bin", {"measurement_mismatch:model"}),
    ],
)
def test_tampered_image_is_contraindicated(
    workspace: FactoryWorkspace, tmp_path: Path, relative: str, reasons: set[str]
) -> None:
    provision_batch(workspace, out=tmp_path / "out", count=1)
    device = tmp_path / "out" / device_name(1, 1)
    image = device / relative
    data = bytearray(image.read_bytes())
    data[100] ^= 0x01
    image.write_bytes(bytes(data))
    result = appraise_dir(device, workspace.endorsements())
    assert result.status is Tier.CONTRAINDICATED
    assert reasons <= set(result.reasons), result.reasons


def test_debug_device_is_contraindicated(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    provision_batch(workspace, out=tmp_path / "out", count=1, mode="debug")
    result = appraise_dir(tmp_path / "out" / device_name(1, 1), workspace.endorsements())
    assert result.status is Tier.CONTRAINDICATED
    assert "debug_enabled" in result.reasons


def test_export_covers_every_release(workspace: FactoryWorkspace, tmp_path: Path) -> None:
    image = tmp_path / "firmware-2.bin"
    image.write_bytes(b"firmware 2")
    provision_batch(workspace, out=tmp_path / "old", count=1)
    provision_batch(
        workspace,
        out=tmp_path / "new",
        count=1,
        firmware={"firmware": image},
        firmware_version="2.0.0",
    )
    bundle = EndorsementBundle.from_json(workspace.endorsements().to_json())
    product = bundle.reference_values.product_named("edgetrust-sim")
    assert product is not None
    assert [fw.version for fw in product.firmware] == ["1.0.0", "2.0.0"]
    for out in ("old", "new"):
        result = appraise_dir(tmp_path / out / device_name(1, 1), bundle)
        assert result.affirming, result.reasons


def test_export_with_the_intermediate_as_anchor(
    workspace: FactoryWorkspace, tmp_path: Path
) -> None:
    provision_batch(workspace, out=tmp_path / "out", count=1)
    device = tmp_path / "out" / device_name(1, 1)
    root_only = workspace.endorsements()
    both = workspace.endorsements(include_intermediate=True)
    assert len(both.anchors) == 2
    assert not appraise_dir(device, root_only, omit_intermediate=True).affirming
    assert appraise_dir(device, both, omit_intermediate=True).affirming
    assert appraise_dir(device, both).affirming


@pytest.mark.parametrize(
    ("organization", "reason"),
    [
        ("edgetrust", "chain_invalid"),  # same CA names, other keys: the signature fails
        ("Acme Devices", "chain_untrusted"),
    ],
)
def test_export_of_another_factory_does_not_affirm(
    workspace: FactoryWorkspace, tmp_path: Path, organization: str, reason: str
) -> None:
    provision_batch(workspace, out=tmp_path / "out", count=1)
    other = FactoryWorkspace.create(tmp_path / "other", organization=organization)
    result = appraise_dir(tmp_path / "out" / device_name(1, 1), other.endorsements())
    assert not result.affirming
    assert result.reasons == (reason,)


def test_export_unknown_product_and_missing_release(workspace: FactoryWorkspace) -> None:
    with pytest.raises(ConfigError, match="unknown product"):
        workspace.endorsements(products=["toaster"])
    for release in (workspace.releases_dir / "edgetrust-sim").iterdir():
        release.unlink()
    with pytest.raises(WorkspaceError, match="no recorded release"):
        workspace.endorsements()


def test_damaged_release_file_is_refused(workspace: FactoryWorkspace) -> None:
    path = workspace.releases_dir / "edgetrust-sim" / "1.0.0.json"
    release = json.loads(path.read_text())
    release["layers"][0]["digests"]["sha256"] = "00"
    path.write_text(json.dumps(release))
    with pytest.raises(WorkspaceError, match="expected 64 hex digits"):
        workspace.endorsements()
