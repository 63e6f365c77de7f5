"""A fleet onboards over real TLS; tampered and revoked devices are refused; renewal works; the
certificates are real X.509-SVIDs of the cluster CA; health, reflection and the revocation feed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import ClientVerifier, PolicyBuilder, Store
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from edgetrust._proto.edgetrust.v1 import revocation_pb2, revocation_pb2_grpc
from edgetrust.attest.ear import verify_ear
from edgetrust.certs.builders import build_operational_certificate
from edgetrust.certs.loading import certificates_pem, private_key_pem
from edgetrust.onboarding.device import SimulatedDevice
from tests.integration.onboarding.conftest import TRUST_DOMAIN, RunningVerifier, spiffe_ids
from tests.integration.onboarding.fleet import tamper

FLEET = 8


def _client_verifier(verifier: RunningVerifier) -> ClientVerifier:
    store = Store([verifier.keys.cluster_ca.anchor])
    return PolicyBuilder().store(store).time(datetime.now(UTC)).build_client_verifier()


def test_fleet_onboards_with_spiffe_certificates(
    verifier: RunningVerifier, new_device: Any
) -> None:
    devices: list[SimulatedDevice] = [new_device() for _ in range(FLEET)]
    client = verifier.client()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda d: d.onboard(client), devices))

    assert all(r.affirmed and r.tier == "affirming" for r in results), results
    validator = _client_verifier(verifier)
    ear_key = verifier.keys.ear_key.public_key()
    for device, result in zip(devices, results, strict=True):
        assert result.certificate is not None
        # Validates against the cluster CA as a TLS client certificate (clientAuth EKU) ...
        verified = validator.verify(result.certificate, list(result.chain))
        assert verified.chain[-1] == verifier.keys.cluster_ca.anchor
        # ... and names the device by its SPIFFE ID (the UEID in hex).
        expected = f"spiffe://{TRUST_DOMAIN}/device/{device.ueid.hex()}"
        assert spiffe_ids(result.certificate) == [expected]
        assert result.spiffe_id == expected
        # The EAR is signed by the verifier and affirms this device.
        ear = verify_ear(result.ear, ear_key)
        assert ear.affirming
        assert ear.ueid == device.ueid
        # The device kept its key and certificate; the key matches the certificate.
        stored = device.operational_certificate()
        assert stored == result.certificate
        key_file = device.operational_dir / "key.pem"
        assert key_file.stat().st_mode & 0o777 == 0o600
        lifetime = result.certificate.not_valid_after_utc - datetime.now(UTC)
        assert timedelta(minutes=58) < lifetime <= timedelta(hours=1)

    state = verifier.registry_state()
    assert state["devices"] == sorted(d.ueid.hex() for d in devices)
    assert (
        sorted(r.certificate.serial_number for r in results if r.certificate)
        == state["certificates"]
    )
    chain = verifier.store.verify_audit_chain()
    issued = [a for a in verifier.store.audit_since(0) if a.action == "certificate.issued"]
    assert len(issued) == FLEET
    assert chain.length == state["audit"]
    assert verifier.server.metrics.snapshot()["attest_affirmed"] == FLEET


def test_tampered_firmware_is_refused_with_the_reason(
    verifier: RunningVerifier, new_device: Any
) -> None:
    device = new_device()
    good = device.boot()
    tamper(device.directory, "firmware")
    bad = device.boot()
    # Tampering changes the evidence: the measurement and the alias keys from that layer on.
    assert good.measurements != bad.measurements
    assert good.chain[0].public_key() != bad.chain[0].public_key()

    before = verifier.registry_state()
    result = device.onboard(verifier.client())

    assert not result.affirmed
    assert result.reasons == ("measurement_mismatch:firmware", "fwid_mismatch:firmware")
    ear = verify_ear(result.ear, verifier.keys.ear_key.public_key())
    assert ear.status.label == "contraindicated"
    assert device.operational_certificate() is None
    assert verifier.registry_state() == before


def test_revoked_device_is_refused(verifier: RunningVerifier, new_device: Any) -> None:
    device = new_device()
    client = verifier.client()
    assert device.onboard(client).affirmed
    verifier.store.revoke_device(device.ueid, reason="stolen", actor="test", now=datetime.now(UTC))
    before = verifier.registry_state()

    result = device.onboard(client, store=False)

    assert not result.affirmed
    assert result.reasons == ("device_revoked",)
    assert verifier.registry_state() == before


def test_renewal_attests_again_and_gets_a_new_certificate(
    verifier: RunningVerifier, new_device: Any
) -> None:
    device = new_device()
    client = verifier.client()
    first = device.onboard(client)
    assert first.certificate is not None
    now = datetime.now(UTC)
    assert device.renew_if_needed(client, now=now) is None  # fresh: nothing to do

    later = first.certificate.not_valid_after_utc - timedelta(minutes=5)
    second = device.renew_if_needed(client, now=later)

    assert second is not None
    assert second.certificate is not None
    assert second.certificate.serial_number != first.certificate.serial_number
    assert second.certificate.public_key() != first.certificate.public_key()  # a fresh TLS key
    assert device.operational_certificate() == second.certificate
    serials = {c.serial for c in verifier.store.certificates_of(device.ueid)}
    assert serials == {first.certificate.serial_number, second.certificate.serial_number}


def test_health_and_reflection(verifier: RunningVerifier) -> None:
    channel = grpc.secure_channel(
        verifier.address, grpc.ssl_channel_credentials(root_certificates=verifier.ca_pem)
    )
    with channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "edgetrust.v1.Verifier"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"edgetrust.v1.Verifier", "edgetrust.v1.Revocations", "grpc.health.v1.Health"} <= names


def _client_credentials(
    verifier: RunningVerifier, spiffe_id: str = f"spiffe://{TRUST_DOMAIN}/agent/a1"
) -> grpc.ChannelCredentials:
    """A cluster-CA client certificate (clientAuth), as an agent holds for the feed."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    cert = build_operational_certificate(
        csr=csr, issuer=verifier.keys.cluster_ca, spiffe_id=spiffe_id
    )
    return grpc.ssl_channel_credentials(
        root_certificates=verifier.ca_pem,
        private_key=private_key_pem(key),
        certificate_chain=certificates_pem([cert]),
    )


def test_revocation_feed_replays_and_follows(verifier: RunningVerifier, new_device: Any) -> None:
    device = new_device()
    assert device.onboard(verifier.client()).affirmed
    verifier.store.revoke_device(device.ueid, reason="lost", actor="test", now=datetime.now(UTC))
    feed = verifier.server.feed_address
    assert feed is not None
    with grpc.secure_channel(feed, _client_credentials(verifier)) as channel:
        stream = revocation_pb2_grpc.RevocationsStub(channel).Watch(
            revocation_pb2.WatchRevocationsRequest(after_seq=0, heartbeat_interval_ms=200),
            timeout=10,
        )
        first = next(stream)
        heartbeat = next(stream)
        other = verifier.store.list_devices()  # nothing else revoked yet
        assert len(other) == 1
        second_device = new_device()
        assert second_device.onboard(verifier.client()).affirmed
        verifier.store.revoke_device(
            second_device.ueid, reason="rma", actor="test", now=datetime.now(UTC)
        )
        followed = next(e for e in stream if e.kind != revocation_pb2.REVOCATION_KIND_HEARTBEAT)
        stream.cancel()
    assert first.kind == revocation_pb2.REVOCATION_KIND_DEVICE
    assert (first.seq, first.ueid_hex, first.reason) == (1, device.ueid.hex(), "lost")
    assert heartbeat.kind == revocation_pb2.REVOCATION_KIND_HEARTBEAT
    assert heartbeat.seq == 1
    assert (followed.seq, followed.ueid_hex) == (2, second_device.ueid.hex())


def test_revocation_feed_refuses_device_certificates(verifier: RunningVerifier) -> None:
    feed = verifier.server.feed_address
    assert feed is not None
    device_id = f"spiffe://{TRUST_DOMAIN}/device/01aa"
    with grpc.secure_channel(feed, _client_credentials(verifier, device_id)) as channel:
        stream = revocation_pb2_grpc.RevocationsStub(channel).Watch(
            revocation_pb2.WatchRevocationsRequest(), timeout=5
        )
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "not an agent" in (info.value.details() or "")  # type: ignore[attr-defined]


def test_revocation_feed_refuses_clients_without_a_certificate(
    verifier: RunningVerifier,
) -> None:
    # On the device port TLS is server-authenticated only: no client identity, no feed.
    channel = grpc.secure_channel(
        verifier.address, grpc.ssl_channel_credentials(root_certificates=verifier.ca_pem)
    )
    with channel:
        stream = revocation_pb2_grpc.RevocationsStub(channel).Watch(
            revocation_pb2.WatchRevocationsRequest(), timeout=5
        )
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "client certificate" in (info.value.details() or "")  # type: ignore[attr-defined]


def test_certificate_is_bound_to_the_cnf_key(verifier: RunningVerifier, new_device: Any) -> None:
    device = new_device()
    result = device.onboard(verifier.client())
    assert result.certificate is not None
    from edgetrust.certs.loading import read_private_key

    key = read_private_key(device.operational_dir / "key.pem")
    assert key.public_key() == result.certificate.public_key()
    eku = result.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_revocation_feed_refuses_a_position_ahead_of_the_registry(
    verifier: RunningVerifier,
) -> None:
    feed = verifier.server.feed_address
    assert feed is not None
    with grpc.secure_channel(feed, _client_credentials(verifier)) as channel:
        stream = revocation_pb2_grpc.RevocationsStub(channel).Watch(
            revocation_pb2.WatchRevocationsRequest(after_seq=99), timeout=5
        )
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert info.value.details() == "after_seq 99 is ahead of the registry's head 0"  # type: ignore[attr-defined]
