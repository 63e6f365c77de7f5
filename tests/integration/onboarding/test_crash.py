"""Crash safety: SIGKILL a real ``edgetrust verifier serve`` process while devices onboard.

Every certificate a device received must be in the registry after the restart (it was committed
before it was sent), the audit log must still verify and agree with the certificates, and the
restarted verifier must onboard again.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography import x509

from edgetrust.attest.reference import EndorsementBundle
from edgetrust.errors import ServiceError
from edgetrust.onboarding.device import SimulatedDevice, VerifierClient
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.workspace import VerifierWorkspace

EDGETRUST = Path(sys.executable).with_name("edgetrust")
START_TIMEOUT_S = 20.0
DEVICES = 6


class VerifierProcess:
    """``edgetrust verifier serve`` on an ephemeral port; the address from its first line."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [str(EDGETRUST), "verifier", "serve", "--config", str(config),
             "--listen", "127.0.0.1:0", "--feed-listen", ""],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.address = self._read_address(self.proc.stdout)

    def _read_address(self, stream: IO[str] | None) -> str:
        assert stream is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        line = box[0] if box else ""
        if not line.startswith("verifier listening on "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            pytest.fail(f"the verifier did not start: {line!r} {err[-2000:]}")
        return line.split()[3].rstrip(";")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def served(verifier_dir: Path, bundle: EndorsementBundle, tmp_path: Path) -> Path:
    """A verifier directory with the bundle imported through the CLI."""
    bundle_file = tmp_path / "endorsements.json"
    bundle.save(bundle_file)
    config = verifier_dir / "verifier.toml"
    done = subprocess.run(
        [str(EDGETRUST), "verifier", "endorse", str(bundle_file), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "endorsed edgetrust-sim" in done.stdout
    return config


def _onboard_until_killed(
    device: SimulatedDevice, address: str, ca_pem: bytes, received: list[x509.Certificate],
    stop: threading.Event,
) -> None:  # fmt: skip
    boot = device.boot()
    with VerifierClient(address, root_ca_pem=ca_pem, timeout=5) as client:
        for _ in range(10_000):  # bounded; the kill or the deadline ends it first
            if stop.is_set():
                return
            try:
                result = device.onboard(client, boot=boot, store=False)
            except ServiceError:
                return  # the verifier died under us
            assert result.affirmed, result.reasons
            assert result.certificate is not None
            received.append(result.certificate)


def test_sigkill_loses_no_committed_record(
    served: Path, verifier_dir: Path, new_device: Any
) -> None:
    workspace = VerifierWorkspace(root=verifier_dir)
    ca_pem = workspace.load_keys().cluster_ca_pem
    devices = [new_device() for _ in range(DEVICES)]
    received: list[x509.Certificate] = []
    stop = threading.Event()
    server = VerifierProcess(served)
    try:
        threads = [
            threading.Thread(
                target=_onboard_until_killed,
                args=(d, server.address, ca_pem, received, stop),
                daemon=True,
            )
            for d in devices
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        while len(received) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # mid-run: requests are in flight on every thread
        stop.set()
        for t in threads:
            t.join(timeout=15)
        assert not any(t.is_alive() for t in threads)
    finally:
        server.stop()
    assert len(received) >= 10, "too few onboardings before the kill to mean anything"

    # The registry after the crash: consistent, and it holds every certificate handed out.
    db = workspace.registry_file
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    restarted = VerifierProcess(served)
    try:
        with SqlRegistryStore(f"sqlite:///{db}", create=False) as store:
            for certificate in received:
                record = store.get_certificate(certificate.serial_number)
                assert record.ueid in {d.ueid for d in devices}
                assert x509.load_pem_x509_certificate(record.pem.encode()) == certificate
            recorded = [c for d in devices for c in store.certificates_of(d.ueid)]
            # Certificates may be recorded that never reached a device (killed after the
            # commit, before the answer), never the other way round.
            assert len(recorded) >= len(received)
            assert len({c.serial for c in recorded}) == len(recorded)
            chain = store.verify_audit_chain()
            audit = store.audit_since(0)
            assert chain.length == len(audit)
            issued = {a.detail["serial"] for a in audit if a.action == "certificate.issued"}
            assert issued == {c.serial_hex for c in recorded}
        # And the restarted verifier onboards.
        with VerifierClient(restarted.address, root_ca_pem=ca_pem, timeout=10) as client:
            assert devices[0].onboard(client).affirmed
    finally:
        restarted.stop()
    assert restarted.proc.returncode == 0
