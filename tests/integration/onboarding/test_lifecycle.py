"""Server lifecycle: a graceful stop lets the call in flight finish, reports NOT_SERVING to health
checks meanwhile, and takes no new calls."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgetrust._proto.edgetrust.v1 import verifier_pb2, verifier_pb2_grpc
from edgetrust.onboarding.nonces import Challenge
from edgetrust.onboarding.verifier import ServerTLS, VerifierServer
from edgetrust.onboarding.workspace import VerifierWorkspace


class SlowCore:
    """A core whose Challenge blocks until released (Attest is never reached here)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def challenge(self, *, device_hint: str) -> Challenge:
        self.entered.set()
        self.release.wait(timeout=10)
        return Challenge(
            nonce=b"n" * 32,
            session_id="s",
            expires_at=datetime.now(UTC) + timedelta(seconds=60),
        )

    def attest(self, request: Any) -> Any:  # pragma: no cover - not called
        raise NotImplementedError


def test_graceful_stop_finishes_calls_in_flight(verifier_dir: Path) -> None:
    keys = VerifierWorkspace(root=verifier_dir).load_keys()
    core = SlowCore()
    server = VerifierServer(
        core=core,
        tls=ServerTLS(
            key_pem=keys.server_key_pem,
            certificate_chain_pem=keys.server_chain_pem,
            client_ca_pem=keys.cluster_ca_pem,
        ),
        listen="127.0.0.1:0",
    ).start()
    credentials = grpc.ssl_channel_credentials(root_certificates=keys.cluster_ca_pem)
    with grpc.secure_channel(server.address, credentials) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        assert (
            health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        )
        in_flight = stub.Challenge.future(verifier_pb2.ChallengeRequest(), timeout=15)
        assert core.entered.wait(timeout=10)
        stopper = threading.Thread(target=server.stop, kwargs={"grace": 10.0})
        stopper.start()
        deadline = time.monotonic() + 5
        while server.serving:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not in_flight.done()  # stopping, and the call is still running
        core.release.set()
        assert in_flight.result(timeout=10).session_id == "s"  # finished, not cut
        stopper.join(timeout=15)
        assert not stopper.is_alive()
        with pytest.raises(grpc.RpcError) as info:
            stub.Challenge(verifier_pb2.ChallengeRequest(), timeout=2)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
