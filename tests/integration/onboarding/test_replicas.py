"""Two verifier replicas on one real PostgreSQL onboard a fleet: no double issuance, no lost record.

Each replica is a full verifier (its own gRPC server, store and connection pool) on the same
database. Devices take their nonce from one replica and attest at the other (nonces live in the
store), and identical requests raced at both replicas are accepted exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust._proto.edgetrust.v1 import verifier_pb2
from edgetrust.attest import eat
from edgetrust.attest.reference import EndorsementBundle
from edgetrust.attest.schemes import DEVICE_EAT_MEDIA_TYPE
from edgetrust.onboarding.device import SimulatedDevice
from tests.integration.onboarding.conftest import (
    RunningVerifier,
    assert_registry_holds_exactly,
    race_attest,
    start_verifier,
)
from tests.pgserver import PostgresServer

FLEET = 12
RACES = 6

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(
    pg_server: PostgresServer, verifier_dir: Path, bundle: EndorsementBundle
) -> Iterator[tuple[RunningVerifier, RunningVerifier]]:
    with pg_server.database() as url:
        first = start_verifier(verifier_dir, database_url=url, bundle=bundle)
        second = start_verifier(verifier_dir, database_url=url)
        try:
            yield first, second
        finally:
            first.close()
            second.close()


def _cross_onboard(
    device: SimulatedDevice, challenger: RunningVerifier, attester: RunningVerifier
) -> x509.Certificate:
    """Challenge at one replica, attest at the other."""
    boot = device.boot()
    key = ec.generate_private_key(ec.SECP256R1())
    grant = challenger.stub().Challenge(verifier_pb2.ChallengeRequest(), timeout=10)
    claims = device.claims(boot, nonce=grant.nonce, tls_key=key, now=challenger.clock())
    reply = attester.stub().Attest(
        verifier_pb2.AttestRequest(
            session_id=grant.session_id,
            chain_der=list(boot.chain_der),
            evidence=eat.make_eat(claims, boot.leaf_key),
            media_type=DEVICE_EAT_MEDIA_TYPE,
            csr_der=device.csr(key).public_bytes(serialization.Encoding.DER),
        ),
        timeout=10,
    )
    assert reply.tier == "affirming"
    return x509.load_der_x509_certificate(reply.certificate_der)


def test_two_replicas_onboard_a_fleet_without_double_issuing(
    replicas: tuple[RunningVerifier, RunningVerifier], new_device: Any
) -> None:
    first, second = replicas
    devices = [new_device() for _ in range(FLEET)]
    jobs = [(d, first, second) if i % 2 else (d, second, first) for i, d in enumerate(devices)]
    jobs += [(d, b, a) for d, a, b in jobs]  # every device twice, once each way round
    with ThreadPoolExecutor(max_workers=8) as pool:
        received = list(pool.map(lambda job: _cross_onboard(*job), jobs))

    # Identical requests raced at both replicas: exactly one is accepted.
    for device in devices[:RACES]:
        boot = device.boot()
        key = ec.generate_private_key(ec.SECP256R1())
        grant = first.stub().Challenge(verifier_pb2.ChallengeRequest(), timeout=10)
        request = verifier_pb2.AttestRequest(
            session_id=grant.session_id,
            chain_der=list(boot.chain_der),
            evidence=eat.make_eat(
                device.claims(boot, nonce=grant.nonce, tls_key=key, now=first.clock()),
                boot.leaf_key,
            ),
            media_type=DEVICE_EAT_MEDIA_TYPE,
            csr_der=device.csr(key).public_bytes(serialization.Encoding.DER),
        )
        received.append(race_attest([first.stub(), second.stub()], request))

    assert len(received) == 2 * FLEET + RACES
    assert_registry_holds_exactly(first.store, devices, received)
    assert second.store.verify_audit_chain() == first.store.verify_audit_chain()
