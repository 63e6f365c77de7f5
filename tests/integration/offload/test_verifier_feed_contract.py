"""Contract test: the agent follows the verifier's real ``edgetrust.v1.Revocations`` servicer.

The registry is replaced by an in-memory revocation source (the servicer's ``RevocationSource``
Protocol); everything else is real: the verifier's feed port with mutual TLS, the agent's gRPC
follower presenting the agent certificate, and a device cut off on an open connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust._proto.edgetrust.v1 import inference_pb2, inference_pb2_grpc
from edgetrust.certs.builders import build_server_certificate
from edgetrust.offload.config import AgentConfig, FeedConfig, TlsPaths
from edgetrust.offload.models import digit_samples
from edgetrust.onboarding.records import RevocationEvent as RevocationRecord
from edgetrust.onboarding.records import RevocationKind as RecordKind
from edgetrust.onboarding.verifier import FeedSettings, ServerTLS, VerifierServer
from tests.integration.offload.conftest import (
    Pki,
    Revoker,
    _write,
    agent_config,
    secure_channel,
    start_agent,
    wait_for,
)


class MemoryRevocations:
    """The registry's append-only revocation sequence, in memory."""

    def __init__(self) -> None:
        self._rows: list[RevocationRecord] = []
        self._lock = threading.Lock()

    def _append(self, kind: RecordKind, ueid_hex: str, serial: int | None, reason: str) -> int:
        with self._lock:
            seq = len(self._rows) + 1
            self._rows.append(
                RevocationRecord(
                    seq=seq, kind=kind, ueid=bytes.fromhex(ueid_hex), serial=serial,
                    reason=reason, actor="test", revoked_at=datetime.now(UTC),
                )
            )  # fmt: skip
            return seq

    def revoke_device(self, ueid_hex: str, reason: str) -> int:
        return self._append(RecordKind.DEVICE, ueid_hex, None, reason)

    def revoke_certificate(self, ueid_hex: str, serial: int) -> int:
        return self._append(RecordKind.CERTIFICATE, ueid_hex, serial, "key leaked")

    def revocation_head(self) -> int:
        with self._lock:
            return len(self._rows)

    def revocations_since(self, after_seq: int, *, limit: int = 1000) -> Sequence[Any]:
        with self._lock:
            return [r for r in self._rows if r.seq > after_seq][:limit]


class NoAttestation:
    """The verifier's attestation core is not exercised here."""

    def challenge(self, *, device_hint: str) -> Any:
        raise NotImplementedError

    def check_media_type(self, media_type: str) -> None:
        raise NotImplementedError

    def attest(self, request: Any) -> Any:
        raise NotImplementedError


@pytest.fixture
def verifier(pki: Pki) -> Iterator[tuple[VerifierServer, MemoryRevocations]]:
    source = MemoryRevocations()
    server = VerifierServer(
        core=NoAttestation(),
        tls=ServerTLS(
            key_pem=pki.agent_key.read_bytes(),
            certificate_chain_pem=pki.agent_cert.read_bytes(),
            client_ca_pem=pki.ca_path.read_bytes(),
        ),
        feed_listen="127.0.0.1:0",
        revocations=source,
        feed_settings=FeedSettings(poll_interval_s=0.05),
    ).start()
    yield server, source
    server.stop(grace=0.2)


def classify(stub: Any) -> Any:
    request = inference_pb2.ClassifyRequest(
        model="digits-mnv3", image=digit_samples()[1].path.read_bytes()
    )
    return stub.Classify(request, timeout=5)


def test_agent_follows_the_verifier_feed(
    pki: Pki, revoker: Revoker, verifier: tuple[VerifierServer, MemoryRevocations]
) -> None:
    server, source = verifier
    early, _ = pki.device()
    source.revoke_device(early, "revoked before the agent started")  # replayed at connect
    base = agent_config(pki, revoker)
    config = AgentConfig(
        listen=base.listen,
        trust_domain=base.trust_domain,
        tls=base.tls,
        models=base.models,
        revocation=FeedConfig(
            feed=str(server.feed_address),
            heartbeat_interval_ms=200,
            server_name="localhost",
            cert=pki.feed_client_cert,
            key=pki.feed_client_key,
        ),
    )
    agent = start_agent(config)
    try:
        wait_for(lambda: agent.revocations.last_seq >= 1)
        ueid, creds = pki.device()
        cert_ueid, by_serial = pki.device()
        serial = x509.load_pem_x509_certificate(by_serial.cert.read_bytes()).serial_number
        with (
            secure_channel(agent.address, creds) as channel,
            secure_channel(agent.address, by_serial) as other,
        ):
            stub = inference_pb2_grpc.InferenceStub(channel)
            other_stub = inference_pb2_grpc.InferenceStub(other)
            assert classify(stub).top
            assert classify(other_stub).top
            source.revoke_device(ueid, "compromised")
            source.revoke_certificate(cert_ueid, serial)
            revoked_at = time.monotonic()

            def refused(s: Any) -> bool:
                try:
                    classify(s)
                except grpc.RpcError as e:
                    return e.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined, no-any-return]
                return False

            wait_for(lambda: refused(stub) and refused(other_stub), timeout=5)
            assert time.monotonic() - revoked_at < 1.5
        assert agent.revocations.last_seq == 3
        assert agent.revocations.revoked_reason(_identity(early)) is not None
    finally:
        agent.stop(grace=0.2)


def test_one_server_and_client_certificate_follows_the_feed_by_default(
    pki: Pki, revoker: Revoker, verifier: tuple[VerifierServer, MemoryRevocations]
) -> None:
    """The documented setup: no revocation.cert/key, the agent's TLS pair carries both EKUs."""
    server, source = verifier
    key = ec.generate_private_key(ec.SECP256R1())
    both = build_server_certificate(
        public_key=key.public_key(),
        issuer=pki.ca,
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        client_auth=True,
    )
    cert_path, key_path = _write(pki.root / "agent-both", "agent", both, key)
    ueid, creds = pki.device()
    source.revoke_device(ueid, "revoked before the agent started")
    base = agent_config(pki, revoker)
    config = AgentConfig(
        listen=base.listen,
        trust_domain=base.trust_domain,
        tls=TlsPaths(cert=cert_path, key=key_path, client_ca=pki.ca_path),
        models=base.models,
        revocation=FeedConfig(
            feed=str(server.feed_address), heartbeat_interval_ms=200, server_name="localhost"
        ),
    )
    agent = start_agent(config)  # synchronised: the feed port accepted the agent's own pair
    try:
        wait_for(lambda: agent.revocations.last_seq >= 1)
        with secure_channel(agent.address, creds) as channel, pytest.raises(grpc.RpcError) as info:
            classify(inference_pb2_grpc.InferenceStub(channel))
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    finally:
        agent.stop(grace=0.2)


def _identity(ueid: str) -> Any:
    from edgetrust.offload.authz import PeerIdentity

    return PeerIdentity(
        spiffe_id=f"spiffe://edgetrust.test/device/{ueid}",
        trust_domain="edgetrust.test",
        ueid_hex=ueid,
        serial_hex="0",
        not_after=datetime.now(UTC),
    )
