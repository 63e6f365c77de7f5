"""``edgetrust verifier serve --processes 2`` on one registry (a SQLite file; and a real
PostgreSQL): a real subprocess, real TLS.

Both processes serve the same port (SO_REUSEPORT); devices open many channels, so both get
traffic. Afterwards: no double issuance, every certificate a device received is recorded (and
nothing else), the audit chain verifies, identical requests raced on two channels are accepted
once. A child killed with SIGKILL stops the whole verifier with exit code 3 and a message naming
it (the design choice: report, do not restart -- see onboarding.verifier_processes); a killed
parent takes its children with it; a taken port is refused before anything serves.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust._proto.edgetrust.v1 import verifier_pb2, verifier_pb2_grpc
from edgetrust.attest.reference import EndorsementBundle
from edgetrust.attest.schemes import DEVICE_EAT_MEDIA_TYPE
from edgetrust.onboarding.device import SimulatedDevice, VerifierClient
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.workspace import VerifierWorkspace
from tests.integration.onboarding.conftest import (
    assert_registry_holds_exactly,
    import_bundle,
    race_attest,
)
from tests.pgserver import PostgresServer

EDGETRUST = Path(sys.executable).with_name("edgetrust")
START_TIMEOUT_S = 30.0
FLEET = 8
CHANNELS_PER_DEVICE = 2
ROUNDS = 2
RACES = 4

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="finds the child processes in /proc (Linux)"
)


class ProcessGroup:
    """``edgetrust verifier serve --processes N`` with its stdout/stderr captured."""

    def __init__(
        self,
        config: Path,
        processes: int = 2,
        listen: str = "127.0.0.1:0",
        database_url: str | None = None,
    ) -> None:
        env = dict(os.environ)
        if database_url is not None:
            env["EDGETRUST_DB_URL"] = database_url
        self.proc = subprocess.Popen(
            [str(EDGETRUST), "verifier", "serve", "--config", str(config), "--listen", listen,
             "--feed-listen", "", "--processes", str(processes), "--grace", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        self.first_line = _read_line(self.proc.stdout, START_TIMEOUT_S)

    @property
    def address(self) -> str:
        if not self.first_line.startswith("verifier listening on "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            pytest.fail(f"the verifier did not start: {self.first_line!r} {err[-2000:]}")
        return self.first_line.split()[3].rstrip(";")

    def children(self) -> list[int]:
        """The verifier processes (not multiprocessing's resource tracker)."""
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        found = []
        for pid in (int(p) for p in text.split()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(pid)
        return found

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        """Wait for the exit (after a signal); (exit code, rest of stdout, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish()

    def kill_all(self) -> None:
        """Test clean-up: the group and every child of it that is still there."""
        children = self.children() if self.proc.poll() is None else []
        for pid in [self.proc.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.communicate(timeout=10)


def _read_line(stream: IO[str] | None, timeout: float) -> str:
    assert stream is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts: it serves nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _metrics(stdout: str) -> dict[str, Any]:
    line = next(x for x in stdout.splitlines() if x.startswith("verifier stopped "))
    parsed: dict[str, Any] = json.loads(line.removeprefix("verifier stopped ").replace("'", '"'))
    return parsed


@pytest.fixture
def config(verifier_dir: Path, bundle: EndorsementBundle) -> Path:
    workspace = VerifierWorkspace(root=verifier_dir)
    with SqlRegistryStore(workspace.default_database_url) as store:
        import_bundle(store, bundle)
    return verifier_dir / "verifier.toml"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry(
    request: pytest.FixtureRequest, verifier_dir: Path, bundle: EndorsementBundle
) -> Iterator[str]:
    """The registry URL the processes share: the verifier directory's SQLite file, or a fresh
    PostgreSQL database (given to the verifier as EDGETRUST_DB_URL)."""
    if request.param == "sqlite":
        url = VerifierWorkspace(root=verifier_dir).default_database_url
        with SqlRegistryStore(url) as store:
            import_bundle(store, bundle)
        yield url
        return
    pg_server: PostgresServer = request.getfixturevalue("pg_server")
    with pg_server.database() as url:
        with SqlRegistryStore(url) as store:
            import_bundle(store, bundle)
        yield url


def _attest_request(device: SimulatedDevice, stub: Any) -> Any:
    boot = device.boot()
    key = ec.generate_private_key(ec.SECP256R1())
    grant = stub.Challenge(verifier_pb2.ChallengeRequest(), timeout=10)
    token = device.evidence(boot, nonce=grant.nonce, tls_key=key, now=datetime.now(UTC))
    return verifier_pb2.AttestRequest(
        session_id=grant.session_id,
        chain_der=list(boot.chain_der),
        evidence=token,
        media_type=DEVICE_EAT_MEDIA_TYPE,
        csr_der=device.csr(key).public_bytes(serialization.Encoding.DER),
    )


def test_two_processes_onboard_a_fleet_on_one_registry(
    registry: str, verifier_dir: Path, new_device: Any
) -> None:
    workspace = VerifierWorkspace(root=verifier_dir)
    ca_pem = workspace.load_keys().cluster_ca_pem
    devices = [new_device() for _ in range(FLEET)]
    group = ProcessGroup(verifier_dir / "verifier.toml", database_url=registry)
    clients: list[VerifierClient] = []
    channels: list[grpc.Channel] = []
    try:
        address = group.address
        assert len(group.children()) == 2
        jobs = []
        for device in devices:
            for _ in range(CHANNELS_PER_DEVICE):
                client = VerifierClient(address, root_ca_pem=ca_pem, timeout=10)
                clients.append(client)
                jobs.append((device, client))

        def onboard(job: tuple[SimulatedDevice, VerifierClient]) -> list[x509.Certificate]:
            device, client = job
            got = []
            for _ in range(ROUNDS):
                result = device.onboard(client, store=False)
                assert result.affirmed, result.reasons
                assert result.certificate is not None
                got.append(result.certificate)
            return got

        with ThreadPoolExecutor(max_workers=8) as pool:
            received = [c for batch in pool.map(onboard, jobs) for c in batch]

        # Identical requests raced on two channels: accepted exactly once.
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
        for device in devices[:RACES]:
            pair = (
                grpc.secure_channel(address, credentials),
                grpc.secure_channel(address, credentials),
            )
            channels.extend(pair)
            stubs = (
                verifier_pb2_grpc.VerifierStub(pair[0]),
                verifier_pb2_grpc.VerifierStub(pair[1]),
            )
            received.append(race_attest(list(stubs), _attest_request(device, stubs[0])))
        for client in clients:
            client.close()
        for channel in channels:
            channel.close()
        code, out, err = group.stop()
    finally:
        if group.proc.poll() is None:
            group.kill_all()
    assert code == 0, err
    metrics = _metrics(out)
    assert metrics["processes"] == 2
    assert metrics["processes_reporting"] == 2
    assert metrics["processes_served"] == 2  # 20 channels: both processes took some
    assert metrics["certificates_issued"] == len(received)

    assert len(received) == FLEET * CHANNELS_PER_DEVICE * ROUNDS + RACES
    with SqlRegistryStore(registry, create=False) as store:
        assert_registry_holds_exactly(store, devices, received)


def test_a_child_killed_stops_the_verifier_with_a_clear_error(config: Path) -> None:
    group = ProcessGroup(config)
    try:
        group.address  # noqa: B018 - started (fails the test otherwise)
        children = group.children()
        assert len(children) == 2
        os.kill(children[1], signal.SIGKILL)
        code, out, err = group.finish(timeout=30)
    finally:
        if group.proc.poll() is None:
            group.kill_all()
    assert code == 3
    assert f"(pid {children[1]}) died (killed by SIGKILL); the verifier stops" in err
    assert err.startswith("error: verifier process ")
    assert "verifier stopped" not in out
    assert _wait_gone(children, 10), "the surviving process was left running"


def test_a_killed_parent_takes_its_children_along(config: Path) -> None:
    group = ProcessGroup(config)
    try:
        group.address  # noqa: B018 - started (fails the test otherwise)
        children = group.children()
        assert len(children) == 2
        group.proc.kill()
        group.proc.communicate(timeout=10)
        assert _wait_gone(children, 15), "orphaned verifier processes kept serving"
    finally:
        for pid in group.children() if group.proc.poll() is None else []:
            os.kill(pid, signal.SIGKILL)


def test_a_taken_port_is_refused_before_anything_serves(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        group = ProcessGroup(config, listen=f"127.0.0.1:{port}")
        code, _, err = group.finish(timeout=30)
    assert code == 2
    assert group.first_line == ""
    assert f"error: cannot listen on 127.0.0.1:{port} (listen)" in err
