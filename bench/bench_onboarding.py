#!/usr/bin/env python
"""Onboarding throughput: 64 concurrent simulated devices against one verifier, and the floor.

Setup (not timed): a factory workspace (onboarding.factory) provisions the fleet, a verifier
directory is initialised and the factory's endorsements imported, and ``edgetrust verifier
serve`` runs as its own process (SQLite registry, WAL, default settings: group commit, 8 worker
threads unless ``--workers``). Each device boots once (a real device boots its DICE chain once at
power-on and may onboard many times), opens one TLS channel to the verifier and then, in a loop,
does a **full onboarding**: a fresh P-256 TLS key, Challenge, its EAT (nonce, measurements, cnf)
signed by the leaf alias key, a CSR, Attest, and the checks of the returned certificate. Nothing
per onboarding is made before the challenge. Latency is per onboarding, from the fresh key to the
Attest answer. The devices run in ``--client-procs`` processes (threads inside), started and
booted before the measured window; throughput counts onboardings completed inside the window.

Floors (measured in this run, one thread, thread CPU time, best of rounds, no I/O):

* **crypto floor**: the bare ``cryptography`` operations every onboarding needs -- device: key
  generation, the EAT signature, the CSR signature; verifier: one signature check per chain link
  (root -> intermediate -> DeviceID -> each alias), the EAT's and the CSR's, the certificate's and
  the EAR's signatures. ``2 cores / floor``: the most this machine could do running nothing else.
* **library path**: the same steps through our code (DICE chain validation with its extension
  checks, EAT decode + verify, certificate building, EAR signing; device evidence and CSR).

Reported per durability mode (arms interleaved over ``--rounds``; medians): onboardings/s, p50/p99,
the CPU per onboarding of the verifier process and of the device processes (both over the window,
all threads), writes per registry commit, the verifier-bound rate (1 core / verifier CPU per
onboarding: what one verifier process -- one GIL -- could serve if the devices ran elsewhere; an
estimate from measured CPU, not a measured rate), and how busy the machine's CPUs were (ours and
other people's: the machine is shared).

Durability: ``sqlite_synchronous = FULL`` (the default) fsyncs the WAL at every commit that carries
an issuance (durable through power loss); nonce inserts alone do not wait for the disk (see
``edgetrust.onboarding.nonces``). ``NORMAL`` never fsyncs at commit (durable through a process
crash, not a power cut). ``--sync`` picks the arms.

Run: ``.venv/bin/python bench/bench_onboarding.py [--quick] [--devices 64] [--seconds 8]
[--rounds 3] [--sync FULL|NORMAL|both] [--workers N]``. Treat absolute figures as noisy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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

    def __init__(self, config: Path, sync: str, workers: int = 8, src: str | None = None) -> None:
        text = config.read_text()
        config.write_text(re.sub(r"(?m)^workers = \d+", f"workers = {workers}", text))
        env = dict(os.environ, EDGETRUST_SQLITE_SYNCHRONOUS=sync)
        if src is not None:  # another source tree's verifier (same devices, same settings)
            env["PYTHONPATH"] = src
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

    def stop(self) -> dict[str, Any]:
        """Stop it; the metrics it printed on the way out."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        for line in reversed(out.strip().splitlines()):
            if line.startswith("verifier stopped "):
                text = line.removeprefix("verifier stopped ").replace("'", '"')
                try:
                    parsed: dict[str, Any] = json.loads(text)
                except ValueError:
                    return {}
                return parsed
        return {}


# ------------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------------


def _client_process(paths: list[str], address: str, ca_pem: bytes, sync: tuple[Any, ...]) -> None:
    """In a child: boot the devices, open their channels, then one thread per device until the
    window closes. Reports completions inside the window and the process's CPU over it.
    ``sync``: (ready queue, go event, window array, results queue)."""
    ready, go, window, results = sync
    from edgetrust.errors import Error
    from edgetrust.onboarding.device import SimulatedDevice, VerifierClient

    devices = [SimulatedDevice.open(p) for p in paths]
    boots = [d.boot() for d in devices]
    clients = [VerifierClient(address, root_ca_pem=ca_pem, timeout=60) for _ in devices]
    for device, boot, client in zip(devices, boots, clients, strict=True):
        device.onboard(client, boot=boot, store=False)  # channel up, code paths warm
    ready.put(len(devices))
    go.wait()
    start_at, end_at = window[0], window[1]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    cpu: dict[str, float] = {}
    samplers = [
        threading.Timer(
            max(0.0, at - time.time()), lambda k=k: cpu.__setitem__(k, time.process_time())
        )
        for k, at in (("start", start_at), ("end", end_at))
    ]
    for sampler in samplers:
        sampler.start()

    def run(index: int) -> None:
        device, boot, client = devices[index], boots[index], clients[index]
        while time.time() < end_at:
            started = time.perf_counter()
            try:
                result = device.onboard(client, boot=boot, store=False)
            except Error as e:
                with lock:
                    errors.append(e.message)
                continue
            took = time.perf_counter() - started
            done = time.time()
            if not result.affirmed:
                with lock:
                    errors.append("; ".join(result.reasons))
            elif start_at <= done <= end_at:
                with lock:
                    latencies.append(took)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(devices))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sampler in samplers:
        sampler.join()
    for client in clients:
        client.close()
    results.put((latencies, errors[:5], len(errors), cpu.get("end", 0.0) - cpu.get("start", 0.0)))


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc); 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds all CPUs of the machine spent busy since boot (Linux /proc/stat); 0 elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def load(
    setup_: Setup, address: str, *, procs: int, warmup: float, seconds: float, server_pid: int
) -> dict[str, Any]:
    ca_pem = setup_.ca_file.read_bytes()
    groups = [[str(p) for p in setup_.devices[i::procs]] for i in range(procs)]
    ctx = multiprocessing.get_context("spawn")  # gRPC does not survive fork
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    window = ctx.Array("d", 2)
    children = [
        ctx.Process(target=_client_process, args=(g, address, ca_pem, (ready, go, window, results)))
        for g in groups
    ]
    for child in children:
        child.start()
    waiting = len(children)  # every device booted and connected before the clock starts
    while waiting:
        try:
            ready.get(timeout=1)
            waiting -= 1
        except queue.Empty:
            if any(c.exitcode not in (None, 0) for c in children):
                raise SystemExit("a device process failed to start") from None
    start_at = time.time() + warmup
    end_at = start_at + seconds
    window[0], window[1] = start_at, end_at
    samples: dict[str, tuple[float, float]] = {}

    def sample(key: str) -> None:
        samples[key] = (_process_cpu(server_pid), _machine_busy())

    timers = [
        threading.Timer(at - time.time(), sample, args=(k,))
        for k, at in (("start", start_at), ("end", end_at))
    ]
    for timer in timers:
        timer.start()
    go.set()
    parts = [results.get(timeout=seconds + warmup + 600) for _ in children]
    for child in children:
        child.join(timeout=60)
    for timer in timers:
        timer.join()
    latencies = sorted(x for part in parts for x in part[0])
    errors = [e for part in parts for e in part[1]]
    count = len(latencies)
    if not count:
        raise SystemExit(f"no onboarding completed in the window; errors: {errors}")
    client_cpu = sum(part[3] for part in parts)
    server_cpu = samples["end"][0] - samples["start"][0]
    busy = samples["end"][1] - samples["start"][1]
    return {
        "rate": count / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000,
        "count": count,
        "server_cpu_ms": server_cpu / count * 1000,
        "client_cpu_ms": client_cpu / count * 1000,
        "cpu_ours": (server_cpu + client_cpu) / seconds,  # CPUs' worth, of os.cpu_count()
        "cpu_others": max(0.0, busy - server_cpu - client_cpu) / seconds,
        "errors": errors,
        "error_count": sum(part[2] for part in parts),
    }


# ------------------------------------------------------------------------------------------------
# Floors
# ------------------------------------------------------------------------------------------------


def _best(work: Callable[[], object], rounds: int) -> float:
    """Thread CPU seconds per call, best of three runs of ``rounds`` calls."""
    for _ in range(3):
        work()
    result = float("inf")
    for _ in range(3):
        started = time.thread_time()
        for _ in range(rounds):
            work()
        result = min(result, (time.thread_time() - started) / rounds)
    return result


def floors(setup_: Setup, rounds: int) -> dict[str, float]:
    """Seconds of CPU per onboarding: bare crypto and our library path, device and verifier."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from edgetrust.attest import cose, eat
    from edgetrust.attest.ear import sign_ear
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
    now = datetime.now(UTC)
    token = device.evidence(boot, nonce=nonce, tls_key=key, now=now)
    csr = device.csr(key)
    message = eat.decode_eat(token)[0]
    ecdsa = ec.ECDSA(hashes.SHA256())
    # every signature of the chain with the key that made it (top: the manufacturer root)
    issuers = [*boot.chain[1:], factory_ca.root_certificate]
    links = [
        (issuer.public_key(), cert.signature, cert.tbs_certificate_bytes)
        for cert, issuer in zip(boot.chain, issuers, strict=True)
    ]
    leaf_key = boot.chain[0].public_key()
    tbs = bytes(token[:600])  # an EAT-sized Sig_structure
    if not isinstance(boot.leaf_key, ec.EllipticCurvePrivateKey):
        raise SystemExit("the bench fleet uses P-256 DICE keys")
    leaf_private = boot.leaf_key
    eat_signature = leaf_private.sign(tbs, ecdsa)
    name = x509.Name([])
    operational = build_operational_certificate(
        csr=csr, issuer=keys.cluster_ca, spiffe_id="spiffe://bench/device/00"
    )

    def device_crypto() -> None:
        k = ec.generate_private_key(ec.SECP256R1())
        leaf_private.sign(tbs, ecdsa)
        x509.CertificateSigningRequestBuilder().subject_name(name).sign(k, hashes.SHA256())

    def verifier_crypto() -> None:
        for public_key, signature, data in links:
            public_key.verify(signature, data, ecdsa)  # type: ignore[union-attr,call-arg]
        leaf_key.verify(eat_signature, tbs, ecdsa)  # type: ignore[union-attr,call-arg]
        _ = csr.is_signature_valid
        keys.cluster_ca.issuer.key.sign(operational.tbs_certificate_bytes, ecdsa)  # type: ignore[call-arg,union-attr]
        keys.ear_key.sign(tbs[:300], ecdsa)

    def device_library() -> None:
        k = ec.generate_private_key(ec.SECP256R1())
        device.evidence(boot, nonce=nonce, tls_key=k, now=now)
        device.csr(k)

    result = _appraisal(setup_, boot, token, nonce, now)

    def verifier_library() -> None:
        chain = validate_chain(boot.chain, anchors, now)
        cose.verify_sign1(message, chain.leaf_public_key)  # type: ignore[arg-type]
        build_operational_certificate(  # verifies the CSR's signature too
            csr=csr, issuer=keys.cluster_ca, spiffe_id="spiffe://bench/device/00"
        )
        sign_ear(result, keys.ear_key)

    return {
        "device_crypto": _best(device_crypto, rounds),
        "verifier_crypto": _best(verifier_crypto, rounds),
        "device_library": _best(device_library, rounds),
        "verifier_library": _best(verifier_library, rounds),
        "links": len(links),
    }


def _appraisal(setup_: Setup, boot: Any, token: bytes, nonce: bytes, now: datetime) -> Any:
    """An affirming attestation result for this fleet (to sign as the EAR)."""
    from edgetrust.attest.appraisal import appraise
    from edgetrust.onboarding.attestation import EndorsementSet
    from edgetrust.onboarding.store import SqlRegistryStore
    from edgetrust.onboarding.workspace import VerifierWorkspace

    workspace = VerifierWorkspace(root=setup_.config.parent)
    with SqlRegistryStore(workspace.default_database_url) as store:
        endorsements = EndorsementSet.from_records(store.list_endorsements())
    return appraise(
        chain_certs=boot.chain,
        token=token,
        anchors=endorsements.anchors,
        reference_values=endorsements.reference_values,
        expected_nonce=nonce,
        now=now,
    )


# ------------------------------------------------------------------------------------------------


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="short run (3 s, 1 round, FULL)")
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per arm")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--workers", default="8", help="verifier gRPC threads; a comma list makes more arms"
    )
    parser.add_argument("--sync", choices=["FULL", "NORMAL", "both"], default="both")
    parser.add_argument(
        "--server-src",
        action="append",
        metavar="NAME=SRC_DIR",
        help="run the verifier from another source tree as an arm (repeat; A/B of versions: "
        "same devices, settings and registry)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 3.0, 1
        args.sync = "FULL" if args.sync == "both" else args.sync
    root = Path(tempfile.mkdtemp(prefix="bench-onboarding-"))
    cpus = os.cpu_count() or 1
    try:
        worker_counts = [int(w) for w in str(args.workers).split(",")]
        print(f"setting up {args.devices} devices ...")
        s = setup(root, args.devices, worker_counts[0])
        f = floors(s, 20 if args.quick else 100)
        crypto = f["device_crypto"] + f["verifier_crypto"]
        library = f["device_library"] + f["verifier_library"]
        ms = 1000.0
        print(
            f"crypto floor: {crypto * ms:.2f} ms CPU per onboarding (device "
            f"{f['device_crypto'] * ms:.2f} + verifier {f['verifier_crypto'] * ms:.2f}; "
            f"{int(f['links'])} chain signatures)"
        )
        print(
            f"  -> at most {cpus / crypto:.0f} onboardings/s on {cpus} CPUs doing nothing else; "
            f"the verifier's part alone: {1 / f['verifier_crypto']:.0f}/s per core"
        )
        print(
            f"library path (same steps through our code): {library * ms:.2f} ms (device "
            f"{f['device_library'] * ms:.2f} + verifier {f['verifier_library'] * ms:.2f})"
        )
        syncs = ["FULL", "NORMAL"] if args.sync == "both" else [args.sync]
        sources: list[tuple[str, str | None]] = [("", None)]
        if args.server_src:
            sources = [(f" {n}", d) for n, _, d in (a.partition("=") for a in args.server_src)]
        arms = [(sync, w, src) for sync in syncs for w in worker_counts for src in sources]
        modes = [
            (f"{sync} w{w}" if len(worker_counts) > 1 else sync) + name
            for sync, w, (name, _) in arms
        ]
        rows: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for round_ in range(args.rounds):
            order = list(zip(modes, arms, strict=True))
            for sync, (sync_mode, workers, (_, src)) in order if round_ % 2 == 0 else order[::-1]:
                server = Server(s.config, sync_mode, workers, src)
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
                writes, batches = stats.get("registry_writes", 0), stats.get("registry_batches", 0)
                r["writes_per_commit"] = writes / batches if batches else float("nan")
                rows[sync].append(r)
                print(
                    f"  round {round_ + 1} {sync:<12} {r['rate']:7.0f}/s  p50 {r['p50_ms']:6.1f} ms"
                    f"  p99 {r['p99_ms']:6.1f} ms  verifier {r['server_cpu_ms']:.2f} ms CPU/onb"
                    f"  devices {r['client_cpu_ms']:.2f}  writes/commit "
                    f"{r['writes_per_commit']:.1f}  CPUs busy: ours {r['cpu_ours']:.2f}, "
                    f"others {r['cpu_others']:.2f}"
                    + (f"  errors {r['error_count']}: {r['errors'][:2]}" if r["errors"] else "")
                )
        print()
        print(
            f"medians of {args.rounds} round(s), {args.devices} devices in "
            f"{args.client_procs} processes, {args.seconds:g} s windows, verifier "
            f"{args.workers} worker threads, SQLite WAL registry:"
        )
        print(
            f"{'arm':<14} {'onb/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'vs crypto':>9} "
            f"{'vs target':>9} {'verifier':>9} {'devices':>8} {'w/commit':>8} {'verif.-bound':>12}"
        )
        print(
            f"{'':<14} {'':>7} {'':>7} {'':>7} {'floor':>9} {'':>9} {'ms CPU':>9} "
            f"{'ms CPU':>8} {'':>8} {'onb/s/core':>12}"
        )
        for sync, got in rows.items():
            rate = _median(got, "rate")
            server_ms = _median(got, "server_cpu_ms")
            print(
                f"{sync:<14} {rate:>7.0f} {_median(got, 'p50_ms'):>7.1f} "
                f"{_median(got, 'p99_ms'):>7.1f} {rate / (cpus / crypto):>8.2f}x "
                f"{rate / TARGET_RATE:>8.2f}x {server_ms:>9.2f} "
                f"{_median(got, 'client_cpu_ms'):>8.2f} {_median(got, 'writes_per_commit'):>8.1f} "
                f"{1000 / server_ms:>12.0f}"
            )
        print(
            "  FULL: the WAL is fsynced at every commit carrying an issuance (power-loss durable); "
            "NORMAL: never at commit (process-crash durable)"
        )
        first = rows[modes[0]]
        total_ms = _median(first, "server_cpu_ms") + _median(first, "client_cpu_ms")
        print()
        print(
            f"targets: >= {TARGET_RATE:.0f} onboardings/s and p99 <= {TARGET_P99_MS:.0f} ms with "
            f"{args.devices} concurrent devices on {cpus} shared CPUs"
        )
        print(
            f"  {TARGET_RATE:.0f}/s leaves {cpus * 1000 / TARGET_RATE:.2f} ms of CPU per "
            f"onboarding for devices and verifier together; the bare crypto takes "
            f"{crypto * ms:.2f} ms, our measured total {total_ms:.2f} ms "
            f"({modes[0]}: verifier {_median(first, 'server_cpu_ms'):.2f} + devices "
            f"{_median(first, 'client_cpu_ms'):.2f})"
        )
        print(
            f"  p99 <= {TARGET_P99_MS:.0f} ms with {args.devices} devices in a closed loop needs "
            f">= {args.devices / (TARGET_P99_MS / 1000):.0f} onboardings/s (Little's law: mean "
            f"latency = devices / rate)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
