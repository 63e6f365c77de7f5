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

**gRPC ceiling** (measured in the same run, as one more arm): the same device processes, threads
and channels (one TLS channel per device, as :class:`VerifierClient` opens it) doing Challenge +
Attest in a loop against a server in its own process with the verifier's TLS server credentials,
gRPC options and worker threads, whose handlers return the canned answers of a real onboarding
(the four messages are captured from one real onboarding first, so the sizes are real). No
crypto, no registry: what Python gRPC itself allows on this machine. Every full arm is reported
as a fraction of it, and the summary says what it implies for the target.

Reported per durability mode (arms interleaved over ``--rounds``; medians): onboardings/s, p50/p99,
the CPU per onboarding of the verifier process and of the device processes (both over the window,
all threads), writes per registry commit, the verifier-bound rate (1 core / verifier CPU per
onboarding: what one verifier process -- one GIL -- could serve if the devices ran elsewhere; an
estimate from measured CPU, not a measured rate), the ratio verifier CPU / device CPU per
onboarding (``v/d CPU``: the device code is the same in every full arm and slows down with the
machine as the verifier does, so this ratio compares full arms far more steadily than absolute CPU
on a shared machine, about +-3%; the ceiling's devices do no crypto, so its ratio is not
comparable), and how busy the machine's CPUs were (ours and other people's: the machine
is shared).

Durability: ``sqlite_synchronous = FULL`` (the default) fsyncs the WAL at every commit that carries
an issuance (durable through power loss); nonce inserts alone do not wait for the disk (see
``edgetrust.onboarding.nonces``). ``NORMAL`` never fsyncs at commit (durable through a process
crash, not a power cut). ``--sync`` picks the arms.

``--db sqlite,postgres`` adds PostgreSQL arms (``PG``, one per process count; ``--sync`` does not
apply to them): a throw-away local cluster (tests/pgserver.py, ``PostgresServer.start(durable=
True)``: fsync, synchronous_commit and full_page_writes on, as a production server runs; or the
server of ``EDGETRUST_TEST_PG_URL``), one database with the same endorsements imported, given to
``verifier serve`` as ``EDGETRUST_DB_URL``. Its settings are read back from the server and printed.
The cluster is stopped and its directory deleted when the bench ends, also on Ctrl-C or SIGTERM.

Run: ``.venv/bin/python bench/bench_onboarding.py [--quick] [--devices 64] [--seconds 8]
[--rounds 3] [--sync FULL|NORMAL|both] [--workers N[,N]] [--processes N[,N]] [--no-ceiling]
[--db sqlite[,postgres]]``.
``--processes 1,2`` adds arms with ``verifier serve --processes 2`` (one ceiling arm per
process count). Treat absolute figures as noisy.
"""

from __future__ import annotations

import argparse
import json
import math
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
REPO = Path(__file__).resolve().parents[1]
DATABASES = ("sqlite", "postgres")
#: PostgreSQL settings that decide what a commit costs, read back from the server and printed
PG_SETTINGS = (
    "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "commit_delay",
    "wal_level",
)  # fmt: skip
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
    #: registry URL per database of ``--db`` (sqlite: the verifier directory's registry.db)
    databases: dict[str, str]
    #: the database server's main process per database of ``--db`` where it runs on this machine
    db_pids: dict[str, int]


def import_endorsements(url: str, bundle: Any) -> None:
    """The factory's endorsement bundle into the registry at ``url`` (one record per product)."""
    from edgetrust.attest.reference import ReferenceValues
    from edgetrust.onboarding.records import Endorsement
    from edgetrust.onboarding.store import SqlRegistryStore

    with SqlRegistryStore(url) as store:
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


def setup(root: Path, devices: int, workers: int, pg: PostgresCluster | None = None) -> Setup:
    from edgetrust.onboarding.factory import FactoryWorkspace
    from edgetrust.onboarding.factory_batch import provision_batch
    from edgetrust.onboarding.workspace import init_workspace, write_config

    factory = FactoryWorkspace.create(root / "factory")
    provision_batch(factory, out=root / "fleet", count=devices)
    paths = sorted(p for p in (root / "fleet").iterdir() if p.is_dir() and p.name[0] != ".")
    verifier = init_workspace(root / "verifier")
    config = write_config(verifier, listen="127.0.0.1:0", feed_listen=None)
    text = config.read_text().replace("workers = 8", f"workers = {workers}")
    config.write_text(text)
    bundle = factory.endorsements()
    databases = {"sqlite": verifier.default_database_url}  # also the floors' and capture's
    db_pids: dict[str, int] = {}
    if pg is not None:
        databases["postgres"] = pg.url
        if pg.pid is not None:
            db_pids["postgres"] = pg.pid
    for url in databases.values():
        import_endorsements(url, bundle)
    return Setup(
        root=root, config=config, ca_file=verifier.cluster_ca_file, devices=paths,
        databases=databases, db_pids=db_pids,
    )  # fmt: skip


class PostgresCluster:
    """A throw-away PostgreSQL cluster with durable settings (tests/pgserver.py), or the server
    of ``EDGETRUST_TEST_PG_URL``; one fresh database for the bench."""

    def __init__(self) -> None:
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from tests.pgserver import PostgresServer, PostgresUnavailableError

        try:
            self.server = PostgresServer.start(durable=True)
        except PostgresUnavailableError as e:
            raise SystemExit(f"--db postgres: {e}") from None
        try:
            self.url = self.server.create_database()
            self.settings = self._settings()
            self.pid: int | None = None  # the postmaster's (private cluster only)
            if self.server.datadir is not None:
                pidfile = self.server.datadir / "data" / "postmaster.pid"
                self.pid = int(pidfile.read_text().split()[0])
        except BaseException:
            self.server.stop()
            raise

    def _settings(self) -> dict[str, str]:
        import psycopg

        with psycopg.connect(self.server.libpq_url(self.url)) as conn:
            return {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in (*PG_SETTINGS, "server_version")
            }

    def describe(self) -> str:
        where = "private cluster" if self.server.datadir is not None else "EDGETRUST_TEST_PG_URL"
        values = ", ".join(f"{k}={self.settings[k]}" for k in PG_SETTINGS)
        return f"PostgreSQL {self.settings['server_version'].split()[0]} ({where}): {values}"

    def stop(self) -> None:
        """Drop the database (an external server) or stop and delete the private cluster."""
        if self.server.datadir is None:
            self.server.drop_database(self.url)
        self.server.stop()


class Server:
    """``edgetrust verifier serve`` in its own process."""

    def __init__(
        self,
        config: Path,
        sync: str,
        workers: int = 8,
        src: str | None = None,
        processes: int = 1,
        *,
        database_url: str | None = None,
    ) -> None:
        text = config.read_text()
        config.write_text(re.sub(r"(?m)^workers = \d+", f"workers = {workers}", text))
        env = dict(os.environ, EDGETRUST_SQLITE_SYNCHRONOUS=sync)
        env.pop("EDGETRUST_DB_URL", None)
        if database_url is not None:  # else the config's registry.db
            env["EDGETRUST_DB_URL"] = database_url
        if src is not None:  # another source tree's verifier (same devices, same settings)
            env["PYTHONPATH"] = src
        extra = ["--processes", str(processes)] if processes != 1 else []
        self.proc = subprocess.Popen(
            [str(EDGETRUST), "verifier", "serve", "--config", str(config), "--grace", "2", *extra],
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
        self.pids = [self.proc.pid, *_descendants(self.proc.pid)]

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
# gRPC ceiling: the same traffic against canned answers
# ------------------------------------------------------------------------------------------------


def capture(setup_: Setup) -> dict[str, bytes]:
    """The four messages of one real onboarding, serialised (from the real verifier)."""
    import grpc
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from edgetrust._proto.edgetrust.v1 import verifier_pb2, verifier_pb2_grpc
    from edgetrust.attest.schemes import DEVICE_EAT_MEDIA_TYPE
    from edgetrust.onboarding.device import SimulatedDevice

    server = Server(setup_.config, "FULL")
    try:
        device = SimulatedDevice.open(setup_.devices[0])
        boot = device.boot()
        credentials = grpc.ssl_channel_credentials(root_certificates=setup_.ca_file.read_bytes())
        with grpc.secure_channel(server.address, credentials) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            challenge_request = verifier_pb2.ChallengeRequest(device_hint=device.ueid.hex())
            grant = stub.Challenge(challenge_request, timeout=60)
            key = ec.generate_private_key(ec.SECP256R1())
            token = device.evidence(boot, nonce=grant.nonce, tls_key=key, now=datetime.now(UTC))
            attest_request = verifier_pb2.AttestRequest(
                session_id=grant.session_id,
                chain_der=list(boot.chain_der),
                evidence=token,
                media_type=DEVICE_EAT_MEDIA_TYPE,
                csr_der=device.csr(key).public_bytes(serialization.Encoding.DER),
            )
            answer = stub.Attest(attest_request, timeout=60)
    finally:
        server.stop()
    if answer.tier != "affirming":
        raise SystemExit(f"the capture onboarding was refused: {list(answer.reasons)}")
    return {
        "challenge_request": challenge_request.SerializeToString(),
        "challenge_response": grant.SerializeToString(),
        "attest_request": attest_request.SerializeToString(),
        "attest_response": answer.SerializeToString(),
    }


def _ceiling_server(
    tls: tuple[bytes, bytes], canned: dict[str, bytes], listen: tuple[str, int, bool], ready: Any
) -> None:
    """In a child: a gRPC server like the verifier's (thread pool, options, TLS credentials)
    whose Verifier handlers return the canned answers. ``listen``: (address, worker threads,
    SO_REUSEPORT)."""
    address, workers, reuse_port = listen
    from concurrent import futures

    import grpc

    from edgetrust._proto.edgetrust.v1 import verifier_pb2, verifier_pb2_grpc
    from edgetrust.onboarding.verifier import RequestLimits

    challenge = verifier_pb2.ChallengeResponse.FromString(canned["challenge_response"])
    attest = verifier_pb2.AttestResponse.FromString(canned["attest_response"])

    class Canned(verifier_pb2_grpc.VerifierServicer):  # type: ignore[misc]
        def Challenge(self, request: Any, context: Any) -> Any:  # noqa: N802
            return challenge

        def Attest(self, request: Any, context: Any) -> Any:  # noqa: N802
            return attest

    options = [  # as VerifierServer
        ("grpc.max_receive_message_length", RequestLimits().max_message_bytes),
        ("grpc.max_send_message_length", 1024 * 1024),
        ("grpc.so_reuseport", int(reuse_port)),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    verifier_pb2_grpc.add_VerifierServicer_to_server(Canned(), server)
    port = server.add_secure_port(address, grpc.ssl_server_credentials([tls]))
    server.start()
    ready.put(port)
    server.wait_for_termination()


class CeilingServer:
    """``processes`` canned-answer servers on one port (SO_REUSEPORT when more than one), with
    the verifier's TLS server key and certificate chain."""

    def __init__(self, setup_: Setup, canned: dict[str, bytes], workers: int, processes: int):
        import socket

        from edgetrust.onboarding.workspace import VerifierWorkspace

        keys = VerifierWorkspace(root=setup_.config.parent).load_keys()
        tls = (keys.server_key_pem, keys.server_chain_pem)
        self._reserved: socket.socket | None = None
        address = "127.0.0.1:0"
        if processes > 1:  # one port for all: reserve it (bound, not listening) while they start
            reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            reserved.bind(("127.0.0.1", 0))
            self._reserved = reserved
            address = f"127.0.0.1:{reserved.getsockname()[1]}"
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        self.procs = [
            ctx.Process(
                target=_ceiling_server,
                args=(tls, canned, (address, workers, processes > 1), ready),
                daemon=True,
            )
            for _ in range(processes)
        ]
        for proc in self.procs:
            proc.start()
        ports = {ready.get(timeout=60) for _ in self.procs}
        if len(ports) != 1:
            raise SystemExit(f"the ceiling servers listen on different ports: {ports}")
        self.address = f"127.0.0.1:{ports.pop()}"
        self.pids = [p.pid for p in self.procs if p.pid is not None]

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.join(timeout=30)
        if self._reserved is not None:
            self._reserved.close()


# ------------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------------


def _client_process(
    kind: str, paths: list[str], target: tuple[str, bytes], canned: Any, sync: tuple[Any, ...]
) -> None:
    """In a child: one thread per device until the window closes, its own channel each. Reports
    completions inside the window and the process's CPU over it.

    ``kind`` ``"full"``: the devices boot, open their channels and do full onboardings.
    ``kind`` ``"ceiling"``: the same channels (options, TLS, one per device) and threads, each
    loop a Challenge then an Attest of the canned messages ``canned`` (serialised ChallengeRequest
    and AttestRequest of a real onboarding): gRPC's own cost, no crypto, no registry.
    ``target``: (verifier address, cluster CA PEM); ``sync``: (ready queue, go event, window
    array, results queue)."""
    address, ca_pem = target
    ready, go, window, results = sync
    step = _ceiling_steps(len(paths), address, ca_pem, canned) if kind == "ceiling" else None
    if step is None:
        step = _onboarding_steps(paths, address, ca_pem)
    one, close = step
    ready.put(len(paths))
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
        while time.time() < end_at:
            started = time.perf_counter()
            error = one(index)
            took = time.perf_counter() - started
            done = time.time()
            if error is not None:
                with lock:
                    errors.append(error)
            elif start_at <= done <= end_at:
                with lock:
                    latencies.append(took)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sampler in samplers:
        sampler.join()
    close()
    results.put((latencies, errors[:5], len(errors), cpu.get("end", 0.0) - cpu.get("start", 0.0)))


Step = tuple[Callable[[int], str | None], Callable[[], None]]


def _onboarding_steps(paths: list[str], address: str, ca_pem: bytes) -> Step:
    """Booted devices with their channels up (code paths warm); one full onboarding per call."""
    from edgetrust.errors import Error
    from edgetrust.onboarding.device import SimulatedDevice, VerifierClient

    devices = [SimulatedDevice.open(p) for p in paths]
    boots = [d.boot() for d in devices]
    clients = [VerifierClient(address, root_ca_pem=ca_pem, timeout=60) for _ in devices]
    for device, boot, client in zip(devices, boots, clients, strict=True):
        device.onboard(client, boot=boot, store=False)

    def one(index: int) -> str | None:
        try:
            result = devices[index].onboard(clients[index], boot=boots[index], store=False)
        except Error as e:
            return e.message
        return None if result.affirmed else "; ".join(result.reasons)

    def close() -> None:
        for client in clients:
            client.close()

    return one, close


def _ceiling_steps(count: int, address: str, ca_pem: bytes, canned: Any) -> Step:
    """Channels as :class:`VerifierClient` opens them; one canned Challenge + Attest per call."""
    import grpc

    from edgetrust._proto.edgetrust.v1 import verifier_pb2, verifier_pb2_grpc

    challenge = verifier_pb2.ChallengeRequest.FromString(canned["challenge_request"])
    attest = verifier_pb2.AttestRequest.FromString(canned["attest_request"])
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    options = [("grpc.max_receive_message_length", 1024 * 1024)]  # as VerifierClient
    channels = [grpc.secure_channel(address, credentials, options=options) for _ in range(count)]
    stubs = [verifier_pb2_grpc.VerifierStub(c) for c in channels]
    for stub in stubs:
        stub.Attest(attest, timeout=60)

    def one(index: int) -> str | None:
        stub = stubs[index]
        try:
            stub.Challenge(challenge, timeout=60)
            stub.Attest(attest, timeout=60)
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()}"
        return None

    def close() -> None:
        for channel in channels:
            channel.close()

    return one, close


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc); 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (Linux /proc; none found elsewhere)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found


def _machine_busy() -> float:
    """CPU seconds all CPUs of the machine spent busy since boot (Linux /proc/stat); 0 elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def load(
    setup_: Setup,
    address: str,
    *,
    procs: int,
    warmup: float,
    seconds: float,
    server_pids: list[int],
    kind: str = "full",
    canned: dict[str, bytes] | None = None,
    db_pid: int | None = None,
) -> dict[str, Any]:
    """One measured window. ``db_pid``: a database server's main process (PostgreSQL's
    postmaster), whose processes' CPU is reported apart (``db_cpu_ms``)."""
    ca_pem = setup_.ca_file.read_bytes()
    groups = [[str(p) for p in setup_.devices[i::procs]] for i in range(procs)]
    ctx = multiprocessing.get_context("spawn")  # gRPC does not survive fork
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    window = ctx.Array("d", 2)
    children = [
        ctx.Process(
            target=_client_process,
            args=(kind, g, (address, ca_pem), canned, (ready, go, window, results)),
        )
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
    db_samples: dict[str, dict[int, float]] = {}

    def sample(key: str) -> None:
        samples[key] = (sum(_process_cpu(pid) for pid in server_pids), _machine_busy())
        if db_pid is not None:  # its backends come and go: per process, summed at the end
            pids = [db_pid, *_descendants(db_pid)]
            db_samples[key] = {pid: _process_cpu(pid) for pid in pids}

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
    db_cpu = sum(  # a backend that ended inside the window is missed
        cpu - db_samples["start"].get(pid, 0.0) for pid, cpu in db_samples.get("end", {}).items()
    )
    return {
        "rate": count / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000,
        "count": count,
        "server_cpu_ms": server_cpu / count * 1000,
        "client_cpu_ms": client_cpu / count * 1000,
        "db_cpu_ms": db_cpu / count * 1000 if db_pid is not None else float("nan"),
        "cpu_ours": (server_cpu + client_cpu + db_cpu) / seconds,  # CPUs' worth, of cpu_count
        "cpu_others": max(0.0, busy - server_cpu - client_cpu - db_cpu) / seconds,
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


def _cpu_ratio(row: dict[str, Any]) -> float:
    """Verifier CPU / device CPU per onboarding (NaN when the devices' CPU was not measured)."""
    client = float(row["client_cpu_ms"])
    return float(row["server_cpu_ms"]) / client if client > 0 else math.nan


def _db_cpu(rows: list[dict[str, Any]]) -> str:
    """The database server's CPU per onboarding, or '-' (SQLite runs inside the verifier)."""
    values = [float(r.get("db_cpu_ms", math.nan)) for r in rows]
    return "-" if any(math.isnan(v) for v in values) else f"{statistics.median(values):.2f}"


@dataclass(frozen=True)
class Arm:
    """One configuration measured in every round."""

    label: str
    kind: str  # "full": real onboardings; "ceiling": canned answers (gRPC's own cost)
    sync: str
    workers: int
    processes: int
    src: str | None = None
    db: str = "sqlite"


def databases_of(args: argparse.Namespace) -> list[str]:
    names = [d.strip() for d in str(args.db).split(",") if d.strip()]
    unknown = sorted(set(names) - set(DATABASES))
    if unknown or not names:
        raise SystemExit(f"--db: unknown {unknown or 'empty'}; choose from {', '.join(DATABASES)}")
    return list(dict.fromkeys(names))


def arms_of(args: argparse.Namespace) -> list[Arm]:
    workers = [int(w) for w in str(args.workers).split(",")]
    processes = [int(n) for n in str(args.processes).split(",")]
    syncs = ["FULL", "NORMAL"] if args.sync == "both" else [args.sync]
    sources: list[tuple[str, str | None]] = [("", None)]
    if args.server_src:
        sources = [(f" {n}", d) for n, _, d in (a.partition("=") for a in args.server_src)]
    databases = databases_of(args)
    arms = []
    for n in processes:
        p_label = f" p{n}" if len(processes) > 1 else ""
        if "sqlite" in databases:
            for sync in syncs:
                for w in workers:
                    w_label = f" w{w}" if len(workers) > 1 else ""
                    for name, src in sources:
                        label = f"{sync}{w_label}{p_label}{name}"
                        arms.append(Arm(label, "full", sync, w, n, src))
        if "postgres" in databases:  # --sync is SQLite's; PostgreSQL runs with its own settings
            for w in workers:
                w_label = f" w{w}" if len(workers) > 1 else ""
                for name, src in sources:
                    label = f"PG{w_label}{p_label}{name}"
                    arms.append(Arm(label, "full", "-", w, n, src, db="postgres"))
        if not args.no_ceiling:
            arms.append(Arm(f"ceiling{p_label}", "ceiling", "-", workers[0], n))
    return arms


def run_arm(
    arm: Arm, s: Setup, canned: dict[str, bytes], args: argparse.Namespace
) -> dict[str, Any]:
    """Start the arm's server, load it for one window, stop it; the figures."""
    if arm.kind == "ceiling":
        ceiling = CeilingServer(s, canned, arm.workers, arm.processes)
        try:
            r = load(
                s, ceiling.address, procs=args.client_procs, warmup=1.0, seconds=args.seconds,
                server_pids=ceiling.pids, kind="ceiling", canned=canned,
            )  # fmt: skip
        finally:
            ceiling.stop()
        r["writes_per_commit"] = float("nan")
        return r
    sync = arm.sync if arm.db == "sqlite" else "FULL"  # (ignored by a PostgreSQL registry)
    url = s.databases[arm.db] if arm.db != "sqlite" else None
    server = Server(s.config, sync, arm.workers, arm.src, arm.processes, database_url=url)
    try:
        r = load(
            s, server.address, procs=args.client_procs, warmup=1.0, seconds=args.seconds,
            server_pids=server.pids, db_pid=s.db_pids.get(arm.db),
        )  # fmt: skip
    finally:
        stats = server.stop()
    writes, batches = stats.get("registry_writes", 0), stats.get("registry_batches", 0)
    r["writes_per_commit"] = writes / batches if batches else float("nan")
    return r


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
    parser.add_argument(
        "--processes",
        default="1",
        help="verifier processes (verifier serve --processes); a comma list makes more arms",
    )
    parser.add_argument("--sync", choices=["FULL", "NORMAL", "both"], default="both")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the gRPC ceiling arm")
    parser.add_argument(
        "--db",
        default="sqlite",
        help="registry databases, a comma list of sqlite and postgres (a throw-away durable "
        "PostgreSQL cluster: tests/pgserver.py, or EDGETRUST_TEST_PG_URL)",
    )
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
    arms = arms_of(args)
    root = Path(tempfile.mkdtemp(prefix="bench-onboarding-"))
    cpus = os.cpu_count() or 1
    pg: PostgresCluster | None = None
    previous = signal.signal(signal.SIGTERM, _terminated)  # clean up as on Ctrl-C
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        if any(a.db == "postgres" for a in arms):
            print("starting a throw-away PostgreSQL cluster ...")
            pg = PostgresCluster()
        print(f"setting up {args.devices} devices ...")
        s = setup(root, args.devices, arms[0].workers, pg)
        f = floors(s, 20 if args.quick else 100)
        canned = capture(s)
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
        sizes = ", ".join(f"{k} {len(v)} B" for k, v in canned.items())
        print(f"gRPC ceiling messages (one real onboarding): {sizes}")
        rows: dict[str, list[dict[str, Any]]] = {a.label: [] for a in arms}
        for round_ in range(args.rounds):
            for arm in arms if round_ % 2 == 0 else arms[::-1]:
                r = run_arm(arm, s, canned, args)
                r["cpu_ratio"] = _cpu_ratio(r)
                rows[arm.label].append(r)
                print(
                    f"  round {round_ + 1} {arm.label:<12} {r['rate']:7.0f}/s  p50 "
                    f"{r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  verifier "
                    f"{r['server_cpu_ms']:.2f} ms CPU/onb  devices {r['client_cpu_ms']:.2f}  "
                    f"v/d CPU {r['cpu_ratio']:.3f}  "
                    + ("" if math.isnan(r["db_cpu_ms"]) else f"db {r['db_cpu_ms']:.2f}  ")
                    + f"writes/commit {r['writes_per_commit']:.1f}  CPUs busy: ours "
                    f"{r['cpu_ours']:.2f}, others {r['cpu_others']:.2f}"
                    + (f"  errors {r['error_count']}: {r['errors'][:2]}" if r["errors"] else "")
                )
        report(
            args, arms, rows, cpus=cpus, crypto=crypto, library=library,
            verifier_library=f["verifier_library"],
            pg_settings=pg.describe() if pg is not None else None,
        )  # fmt: skip
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut it short
            signal.signal(signum, signal.SIG_IGN)
        try:
            if pg is not None:
                pg.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def report(
    args: argparse.Namespace,
    arms: list[Arm],
    rows: dict[str, list[dict[str, Any]]],
    *,
    cpus: int,
    crypto: float,
    library: float,
    verifier_library: float,
    pg_settings: str | None = None,
) -> None:
    ms = 1000.0
    registries = "SQLite WAL registry" if pg_settings is None else "registry SQLite WAL or PG"
    print()
    print(
        f"medians of {args.rounds} round(s), {args.devices} devices in "
        f"{args.client_procs} processes, {args.seconds:g} s windows, verifier "
        f"{args.workers} worker threads x {args.processes} process(es), {registries}:"
    )
    db_column = pg_settings is not None  # PostgreSQL's own processes (SQLite runs inside)
    print(
        f"{'arm':<14} {'onb/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'vs crypto':>9} "
        f"{'vs gRPC':>8} {'vs target':>9} {'verifier':>9} {'devices':>8} {'v/d CPU':>8} "
        + (f"{'PG server':>9} " if db_column else "")
        + f"{'w/commit':>8} {'verif.-bound':>12}"
    )
    print(
        f"{'':<14} {'':>7} {'':>7} {'':>7} {'floor':>9} {'ceiling':>8} {'':>9} {'ms CPU':>9} "
        f"{'ms CPU':>8} {'ratio':>8} "
        + (f"{'ms CPU':>9} " if db_column else "")
        + f"{'':>8} {'onb/s/core':>12}"
    )
    ceilings = {a.processes: _median(rows[a.label], "rate") for a in arms if a.kind == "ceiling"}
    for arm in arms:
        got = rows[arm.label]
        rate = _median(got, "rate")
        server_ms = _median(got, "server_cpu_ms")
        ceiling = ceilings.get(arm.processes)
        versus = f"{rate / ceiling:>7.2f}x" if ceiling else f"{'-':>8}"
        floor = f"{rate / (cpus / crypto):>8.2f}x" if arm.kind == "full" else f"{'-':>9}"
        print(
            f"{arm.label:<14} {rate:>7.0f} {_median(got, 'p50_ms'):>7.1f} "
            f"{_median(got, 'p99_ms'):>7.1f} {floor} {versus} "
            f"{rate / TARGET_RATE:>8.2f}x {server_ms:>9.2f} "
            f"{_median(got, 'client_cpu_ms'):>8.2f} {_median(got, 'cpu_ratio'):>8.3f} "
            + (f"{_db_cpu(got):>9} " if db_column else "")
            + f"{_median(got, 'writes_per_commit'):>8.1f} {1000 / server_ms:>12.0f}"
        )
    print(
        "  v/d CPU: verifier CPU / device CPU per onboarding (median of the rounds' ratios); the "
        "device code is the same in every full arm, so on a shared machine this ratio compares "
        "them much more steadily (~+-3%) than absolute CPU (not the ceiling: no device crypto)"
    )
    print(
        "  FULL: the WAL is fsynced at every commit carrying an issuance (power-loss durable); "
        "NORMAL: never at commit (process-crash durable)"
    )
    if pg_settings is not None:
        print(
            f"  PG: {pg_settings}; a commit carrying an issuance waits for the WAL flush, "
            "nonce-only commits do not (SET LOCAL synchronous_commit = off); 'PG server': the "
            "CPU of the cluster's processes on this machine (not in 'verifier', nor in "
            "verif.-bound)"
        )
    print(
        "  ceiling: the same device processes, threads and TLS channels doing Challenge + Attest "
        "against a server with the verifier's TLS credentials, options and threads whose "
        "handlers return canned answers of a real onboarding (no crypto, no registry): what "
        "Python gRPC alone allows here"
    )
    full = [a for a in arms if a.kind == "full"]
    first = rows[full[0].label]
    total_ms = _median(first, "server_cpu_ms") + _median(first, "client_cpu_ms")
    budget = cpus * 1000 / TARGET_RATE
    print()
    print(
        f"targets: >= {TARGET_RATE:.0f} onboardings/s and p99 <= {TARGET_P99_MS:.0f} ms with "
        f"{args.devices} concurrent devices on {cpus} shared CPUs"
    )
    print(
        f"  {TARGET_RATE:.0f}/s leaves {budget:.2f} ms of CPU per "
        f"onboarding for devices and verifier together; the bare crypto takes "
        f"{crypto * ms:.2f} ms, our measured total {total_ms:.2f} ms "
        f"({full[0].label}: verifier {_median(first, 'server_cpu_ms'):.2f} + devices "
        f"{_median(first, 'client_cpu_ms'):.2f})"
    )
    print(
        f"  p99 <= {TARGET_P99_MS:.0f} ms with {args.devices} devices in a closed loop needs "
        f">= {args.devices / (TARGET_P99_MS / 1000):.0f} onboardings/s (Little's law: mean "
        f"latency = devices / rate)"
    )
    for processes, ceiling in sorted(ceilings.items()):
        label = next(a.label for a in arms if a.kind == "ceiling" and a.processes == processes)
        got = rows[label]
        grpc_ms = _median(got, "server_cpu_ms") + _median(got, "client_cpu_ms")
        best = max(
            (a for a in full if a.processes == processes),
            key=lambda a: _median(rows[a.label], "rate"),
            default=None,
        )
        achieved = "" if best is None else (
            f"; the best full arm ({best.label}) reaches "
            f"{_median(rows[best.label], 'rate') / ceiling:.0%} of it"
        )  # fmt: skip
        print(
            f"  {label}: {ceiling:.0f} onb/s, p50 {_median(got, 'p50_ms'):.1f} ms, p99 "
            f"{_median(got, 'p99_ms'):.1f} ms; gRPC's own CPU {grpc_ms:.2f} ms per onboarding "
            f"(server {_median(got, 'server_cpu_ms'):.2f} + devices "
            f"{_median(got, 'client_cpu_ms'):.2f}){achieved}"
        )
        for arm in (a for a in full if a.processes == processes):
            verifier_ms = _median(rows[arm.label], "server_cpu_ms")
            grpc_server = _median(got, "server_cpu_ms")
            rest = verifier_ms - grpc_server - verifier_library * ms
            print(
                f"    {arm.label}: verifier {verifier_ms:.2f} ms CPU per onboarding = gRPC server "
                f"{grpc_server:.2f} (ceiling) + library path {verifier_library * ms:.2f} + the "
                f"rest {rest:.2f} (registry writes and commits, thread hand-offs, glue, and "
                "all of it running slower under load than in the best-of, one-thread floors)"
            )
        bound = cpus * 1000 / (grpc_ms + library * ms)
        if ceiling < TARGET_RATE:
            print(
                f"    -> the ceiling is below {TARGET_RATE:.0f}/s: no verifier behind Python gRPC "
                f"reaches the target on this machine, whatever its own cost; with gRPC plus our "
                f"library path ({library * ms:.2f} ms) and nothing else, at most ~{bound:.0f}/s"
            )
        else:
            print(
                f"    -> gRPC leaves {budget - grpc_ms:.2f} ms per onboarding for the crypto "
                f"({crypto * ms:.2f} ms floor) and our code ({library * ms:.2f} ms library "
                f"path): at most ~{bound:.0f}/s with nothing else"
            )


if __name__ == "__main__":
    main()
