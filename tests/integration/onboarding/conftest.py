"""Fixtures for the onboarding integration tests: real TLS on 127.0.0.1, real SQLite (and a real
PostgreSQL for the replica test), the real verifier, simulated devices in factory layout.

``verifier`` is an in-process :class:`~edgetrust.onboarding.verifier.VerifierServer` on an
ephemeral port with a controllable clock; the crash test runs ``edgetrust verifier serve`` as a
real subprocess instead (see test_crash.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from edgetrust._proto.edgetrust.v1 import verifier_pb2_grpc
from edgetrust.attest.reference import EndorsementBundle, ReferenceValues
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.onboarding.device import SimulatedDevice, VerifierClient
from edgetrust.onboarding.records import Endorsement
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.verifier import (
    VerifierServer,
    VerifierSettings,
    build_verifier_server,
)
from edgetrust.onboarding.workspace import VerifierKeys, init_workspace, write_config
from tests.integration.onboarding.fleet import Product, endorsements, make_device

TRUST_DOMAIN = "fleet.test"


@dataclass(slots=True)
class FakeClock:
    """Real time plus an offset the test can move forward."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def import_bundle(store: SqlRegistryStore, bundle: EndorsementBundle) -> None:
    """What ``edgetrust verifier endorse`` does (one endorsement per product)."""
    for product in bundle.reference_values.products:
        store.put_endorsement(
            Endorsement(
                product=product.product,
                firmware_version="",
                document=ReferenceValues(products=(product,)).to_json(),
                trust_anchors_pem=bundle.anchors_pem,
            ),
            actor="test",
            now=datetime.now(UTC),
        )


@dataclass(slots=True)
class RunningVerifier:
    server: VerifierServer
    store: SqlRegistryStore
    keys: VerifierKeys
    clock: FakeClock
    directory: Path
    _clients: list[VerifierClient] = field(default_factory=list)
    _channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def ca_pem(self) -> bytes:
        return self.keys.cluster_ca_pem

    def client(self) -> VerifierClient:
        client = VerifierClient(self.address, root_ca_pem=self.ca_pem, timeout=10)
        self._clients.append(client)
        return client

    def stub(self) -> Any:
        channel = grpc.secure_channel(
            self.address, grpc.ssl_channel_credentials(root_certificates=self.ca_pem)
        )
        self._channels.append(channel)
        return verifier_pb2_grpc.VerifierStub(channel)

    def registry_state(self) -> dict[str, Any]:
        """Everything a request could have stored (nonces aside)."""
        devices = self.store.list_devices()
        return {
            "devices": sorted(d.ueid.hex() for d in devices),
            "certificates": sorted(
                c.serial for d in devices for c in self.store.certificates_of(d.ueid)
            ),
            "audit": len(self.store.audit_since(0)),
            "revocations": self.store.revocation_head(),
        }

    def server_core_refresh(self) -> None:
        """Make the verifier re-read its endorsements now (not after the refresh period)."""
        self.server.core.endorsements.invalidate()  # type: ignore[attr-defined]

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for channel in self._channels:
            channel.close()
        self.server.stop(grace=0.5)
        self.store.close()


@pytest.fixture(scope="session")
def manufacturer() -> CertificateAuthority:
    """The device maker's CA: a root and an intermediate that signs DeviceID certificates."""
    return CertificateAuthority.create(intermediate=True)


@pytest.fixture(scope="session")
def stranger() -> CertificateAuthority:
    """Another manufacturer nobody endorsed."""
    return CertificateAuthority.create(subject="CN=unknown manufacturer,O=elsewhere")


@pytest.fixture(scope="session")
def bundle(manufacturer: CertificateAuthority) -> EndorsementBundle:
    return endorsements(manufacturer, [Product()])


@pytest.fixture(scope="session")
def verifier_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One verifier directory (keys are slow-ish to make); tests copy its registry-free parts."""
    root = tmp_path_factory.mktemp("verifier-template") / "verifier"
    workspace = init_workspace(root)
    write_config(
        workspace,
        listen="127.0.0.1:0",
        feed_listen="127.0.0.1:0",
        trust_domain=TRUST_DOMAIN,
    )
    return root


def start_verifier(
    directory: Path,
    *,
    database_url: str | None = None,
    bundle: EndorsementBundle | None = None,
    clock: FakeClock | None = None,
    **settings: Any,
) -> RunningVerifier:
    from edgetrust.onboarding.workspace import VerifierWorkspace

    workspace = VerifierWorkspace(root=directory)
    keys = workspace.load_keys()
    store = SqlRegistryStore(database_url or workspace.default_database_url)
    if bundle is not None:
        import_bundle(store, bundle)
    clock = clock or FakeClock()
    options: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "feed_listen": "127.0.0.1:0",
        "trust_domain": TRUST_DOMAIN,
        "workers": 4,
    }
    options.update(settings)
    server = build_verifier_server(
        keys=keys, store=store, settings=VerifierSettings(**options), clock=clock
    ).start()
    return RunningVerifier(server=server, store=store, keys=keys, clock=clock, directory=directory)


@pytest.fixture
def verifier_dir(verifier_template: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "verifier"
    shutil.copytree(verifier_template, target)
    return target


@pytest.fixture
def verifier(verifier_dir: Path, bundle: EndorsementBundle) -> Iterator[RunningVerifier]:
    running = start_verifier(verifier_dir, bundle=bundle)
    try:
        yield running
    finally:
        running.close()


_counter = itertools.count()


@pytest.fixture
def new_device(tmp_path: Path, manufacturer: CertificateAuthority) -> Any:
    """Factory of simulated devices (factory layout on disk, then opened)."""

    def make(
        *,
        ca: CertificateAuthority | None = None,
        product: Product | None = None,
        mode: str = "normal",
        secure_boot: bool = True,
    ) -> SimulatedDevice:
        path = tmp_path / "devices" / f"device-{next(_counter):04d}"
        make_device(path, ca or manufacturer, product=product, mode=mode, secure_boot=secure_boot)
        return SimulatedDevice.open(path)

    return make


def spiffe_ids(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def race_attest(stubs: list[Any], request: Any) -> x509.Certificate:
    """Send one AttestRequest on every stub at the same moment: exactly one is accepted, the
    others are refused as replays. The accepted certificate."""
    barrier = threading.Barrier(len(stubs))
    outcomes: list[Any] = []

    def attest(stub: Any) -> None:
        barrier.wait(timeout=10)
        try:
            outcomes.append(stub.Attest(request, timeout=10))
        except grpc.RpcError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=attest, args=(s,)) for s in stubs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    wins = [o for o in outcomes if not isinstance(o, grpc.RpcError)]
    losses = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert len(wins) == 1, outcomes
    assert len(losses) == len(stubs) - 1
    for loss in losses:
        assert loss.code() is grpc.StatusCode.PERMISSION_DENIED
        assert loss.details() == "refused: nonce_replayed"
    return x509.load_der_x509_certificate(wins[0].certificate_der)


def assert_registry_holds_exactly(
    store: SqlRegistryStore, devices: list[SimulatedDevice], received: list[x509.Certificate]
) -> None:
    """The registry after a fleet onboarded: every certificate a device received is recorded
    (same certificate), nothing else is, none twice; the devices are registered; the audit chain
    verifies and has one ``certificate.issued`` entry per certificate."""
    recorded = {c.serial: c for d in devices for c in store.certificates_of(d.ueid)}
    assert len({c.serial_number for c in received}) == len(received)  # no double issuance
    assert {c.serial_number for c in received} == set(recorded)  # none lost, none extra
    for certificate in received:
        record = recorded[certificate.serial_number]
        assert x509.load_pem_x509_certificate(record.pem.encode()) == certificate
    assert sorted(d.ueid.hex() for d in store.list_devices()) == sorted(
        d.ueid.hex() for d in devices
    )
    chain = store.verify_audit_chain()
    audit = store.audit_since(0)
    assert chain.length == len(audit)
    issued = [a for a in audit if a.action == "certificate.issued"]
    assert sorted(a.detail["serial"] for a in issued) == sorted(
        c.serial_hex for c in recorded.values()
    )
