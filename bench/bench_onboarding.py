#!/usr/bin/env python
"""Onboarding throughput: 64 concurrent simulated devices against one verifier, and the floor.

Setup (not timed): a factory workspace (onboarding.factory) provisions the fleet, a verifier
directory is initialised and the factory's endorsements imported, and ``edgetrust verifier
serve`` runs as its own process (SQLite registry, WAL). Each device boots once (a real device
boots once and may onboard many times), opens one TLS channel to the verifier and then, in a loop,
does a **full onboarding**: a fresh P-256 TLS key, Challenge, its EAT (nonce, measurements, cnf)
signed by the leaf alias key, a CSR, Attest, and the checks of the returned certificate's key.
Latency is measured per onboarding, from the Challenge call to the Attest answer (device-side
crypto included). The devices run in ``--client-procs`` processes (threads inside), so that their
Python work is not serialised behind the verifier's GIL.

Floor (measured in this run, one thread, no I/O): the cryptography every onboarding needs --
device: key generation, EAT signature, CSR signature; verifier: DICE chain validation (root ->
intermediate -> DeviceID -> 3 aliases), EAT signature check, CSR check, certificate signature, EAR
signature. ``2 x floor`` is the most a 2-core machine could do if nothing but that crypto ran.

The registry commits every Challenge (the nonce) and every issuance before answering. With
``sqlite_synchronous = FULL`` (the default: durable through power loss) each commit waits for
an fsync; ``NORMAL`` (WAL: durable through a process crash, not a power cut) does not. Both are
measured (``--sync``).

Run: ``.venv/bin/python bench/bench_onboarding.py [--quick] [--devices 64] [--seconds 10]``.
The machine is shared while this runs: treat absolute figures as noisy.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EDGETRUST = Path(sys.executable).with_name("edgetrust")
TARGET_RATE = 1000.0
TARGET_P99_MS = 100.0


# ------------------------------------------------------------------------------------------------
# Setup
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    root: Path
    config: Path
    ca_file: Path
    devices: list[Path]


def setup(root: Path, devices: int, workers: int) -> Setup:
    from edgetrust.attest.reference import ReferenceValues
    from edgetrust.onboarding.factory import FactoryWorkspace
    from edgetrust.onboarding.factory_batch import provision_batch
    from edgetrust.onboarding.records import Endorsement
    from edgetrust.onboarding.store import SqlRegistryStore
    from edgetrust.onboarding.workspace import init_workspace, write_config

    factory = FactoryWorkspace.create(root / "factory")
    provision_batch(factory, out=root / "fleet", count=devices)
    paths = sorted(p for p in (root / "fleet").iterdir() if p.is_dir() and p.name[0] != ".")
    verifier = init_workspace(root / "verifier")
    config = write_config(verifier, listen="127.0.0.1:0", feed_listen=None)
    text = config.read_text().replace("workers = 8", f"workers = {workers}")
    config.write_text(text)
    bundle = factory.endorsements()
    with SqlRegistryStore(verifier.default_database_url) as store:
        for product in bundle.reference_values.products:
            store.put_endorsement(
                Endorsement(
                    product=product.product,
                    firmware_version="",
                    document=ReferenceValues(products=(product,)).to_json(),
                    trust_anchors_pem=bundle.anchors_pem,
                ),
                actor="bench",
                now=datetime.now(UTC),
            )
    return Setup(root=root, config=config, ca_file=verifier.cluster_ca_file, devices=paths)


class Server:
    """``edgetrust verifier serve`` in its own process."""

    def __init__(self, config: Path, sync: str) -> None:
        env = dict(os.environ, EDGETRUST_SQLITE_SYNCHRONOUS=sync)
        self.proc = subprocess.Popen(
            [str(EDGETRUST), "verifier", "serve", "--config", str(config), "--grace", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("verifier listening on"):
            self.proc.kill()
            raise SystemExit(f"verifier did not start: {line!r}")
        self.address = line.split()[3].rstrip(";")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return out.strip()


# ------------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------------


def _client_process(
    paths: list[str], address: str, ca_pem: bytes, start_at: float, end_at: float
) -> tuple[list[float], int, list[str], float]:
    """Run in a child: one thread per device until ``end_at``; latencies inside the window."""
    from edgetrust.errors import Error
    from edgetrust.onboarding.device import SimulatedDevice, VerifierClient

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    total = [0]
    cpu: dict[str, float] = {}
    samplers = [
        threading.Timer(
            max(0.0, at - time.time()), lambda k=k: cpu.__setitem__(k, time.process_time())
        )
        for k, at in (("start", start_at), ("end", end_at))
    ]
    for sampler in samplers:
        sampler.start()

    def run(path: str) -> None:
        device = SimulatedDevice.open(path)
        boot = device.boot()
        with VerifierClient(address, root_ca_pem=ca_pem, timeout=30) as client:
            while (now := time.time()) < end_at:
                started = time.perf_counter()
                try:
                    result = device.onboard(client, boot=boot, store=False)
                except Error as e:
                    errors.append(e.message)
                    continue
                took = time.perf_counter() - started
                if not result.affirmed:
                    errors.append("; ".join(result.reasons))
                elif now >= start_at and time.time() <= end_at:
                    with lock:
                        latencies.append(took)
                        total[0] += 1

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sampler in samplers:
        sampler.join()
    return latencies, total[0], errors[:5], cpu.get("end", 0.0) - cpu.get("start", 0.0)


def _server_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc); 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    setup_: Setup, address: str, *, procs: int, warmup: float, seconds: float, server_pid: int
) -> dict[str, Any]:
    ca_pem = setup_.ca_file.read_bytes()
    groups = [[str(p) for p in setup_.devices[i::procs]] for i in range(procs)]
    start_at = time.time() + warmup + 2.0  # + child start-up (imports)
    end_at = start_at + seconds
    server_cpu: dict[str, float] = {}
    samplers = [
        threading.Timer(
            at - time.time(), lambda k=k: server_cpu.__setitem__(k, _server_cpu(server_pid))
        )
        for k, at in (("start", start_at), ("end", end_at))
    ]
    for sampler in samplers:
        sampler.start()
    ctx = multiprocessing.get_context("spawn")  # gRPC does not survive fork
    with ctx.Pool(procs) as pool:
        parts = pool.starmap(
            _client_process, [(g, address, ca_pem, start_at, end_at) for g in groups]
        )
    for sampler in samplers:
        sampler.join()
    latencies = sorted(x for part in parts for x in part[0])
    count = sum(part[1] for part in parts)
    errors = [e for part in parts for e in part[2]]
    if not latencies:
        raise SystemExit(f"no onboarding completed in the window; errors: {errors}")
    client_cpu = sum(part[3] for part in parts)
    return {
        "server_cpu_ms": (server_cpu.get("end", 0) - server_cpu.get("start", 0)) / count * 1000,
        "client_cpu_ms": client_cpu / count * 1000,
        "rate": count / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "count": count,
        "errors": errors,
    }


# ------------------------------------------------------------------------------------------------
# Floor
# ------------------------------------------------------------------------------------------------


def floor(setup_: Setup, rounds: int) -> tuple[float, float]:
    """Seconds of pure cryptography per onboarding (one thread): (device part, verifier part),
    each the best of three rounds."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from edgetrust.attest import cose, eat
    from edgetrust.certs.builders import build_operational_certificate
    from edgetrust.certs.ca import CertificateAuthority
    from edgetrust.certs.chain import validate_chain
    from edgetrust.onboarding.device import SimulatedDevice
    from edgetrust.onboarding.workspace import VerifierWorkspace

    device = SimulatedDevice.open(setup_.devices[0])
    boot = device.boot()
    factory_ca = CertificateAuthority.load(setup_.root / "factory" / "ca")
    keys = VerifierWorkspace(root=setup_.config.parent).load_keys()
    anchors = [factory_ca.anchor]
    nonce = os.urandom(32)
    key = ec.generate_private_key(ec.SECP256R1())
    token = device.evidence(boot, nonce=nonce, tls_key=key, now=datetime.now(UTC))
    csr = device.csr(key)

    def device_side() -> None:
        k = ec.generate_private_key(ec.SECP256R1())
        device.evidence(boot, nonce=nonce, tls_key=k, now=datetime.now(UTC))
        device.csr(k)

    def verifier_side() -> None:
        chain = validate_chain(boot.chain, anchors, datetime.now(UTC))
        cose.verify_sign1(eat.decode_eat(token)[0], chain.leaf_public_key)  # type: ignore[arg-type]
        build_operational_certificate(  # verifies the CSR's signature too
            csr=csr, issuer=keys.cluster_ca, spiffe_id="spiffe://bench/device/00"
        )
        keys.ear_key.sign(token[:512], ec.ECDSA(hashes.SHA256()))  # an EAR-sized ES256 signature

    def best(work: Any) -> float:
        for _ in range(5):
            work()
        result = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(rounds):
                work()
            result = min(result, (time.perf_counter() - started) / rounds)
        return result

    return best(device_side), best(verifier_side)


# ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (3 s, 16 devices)")
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=8, help="verifier gRPC threads")
    parser.add_argument("--sync", choices=["FULL", "NORMAL", "both"], default="both")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.seconds = min(args.devices, 16), 3.0
    root = Path(tempfile.mkdtemp(prefix="bench-onboarding-"))
    try:
        print(f"setting up {args.devices} devices, verifier with {args.workers} workers ...")
        s = setup(root, args.devices, args.workers)
        device_floor, verifier_floor = floor(s, 20 if args.quick else 100)
        floor_s = device_floor + verifier_floor
        floor_rate = 1 / floor_s
        print(
            f"crypto-only floor: {floor_s * 1000:.2f} ms per onboarding on one core "
            f"(device {device_floor * 1000:.2f} + verifier {verifier_floor * 1000:.2f})"
        )
        print(f"  = {floor_rate:.0f} onboardings/s per core, {2 * floor_rate:.0f}/s on 2 cores")
        print()
        header = f"{'sqlite sync':<12} {'onboard/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
        print(header + f" {'vs 2x floor':>12} {'vs target':>10}")
        modes = ["FULL", "NORMAL"] if args.sync == "both" else [args.sync]
        for sync in modes:
            server = Server(s.config, sync)
            try:
                r = load(
                    s,
                    server.address,
                    procs=args.client_procs,
                    warmup=1.0,
                    seconds=args.seconds,
                    server_pid=server.proc.pid,
                )
            finally:
                stats = server.stop()
            print(
                f"{sync:<12} {r['rate']:>10.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                f"{r['rate'] / (2 * floor_rate):>11.2f}x {r['rate'] / TARGET_RATE:>9.2f}x"
            )
            print(
                f"  CPU per onboarding: verifier {r['server_cpu_ms']:.2f} ms "
                f"(floor {verifier_floor * 1000:.2f}), devices {r['client_cpu_ms']:.2f} ms "
                f"(floor {device_floor * 1000:.2f})"
            )
            if r["errors"]:
                print(f"  errors (first): {r['errors']}")
            print(f"  server: {stats.splitlines()[-1] if stats else '-'}")
        print()
        print(
            f"targets: >= {TARGET_RATE:.0f} onboardings/s and p99 <= {TARGET_P99_MS:.0f} ms "
            f"with {args.devices} concurrent devices; {os.cpu_count()} CPUs, shared"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
