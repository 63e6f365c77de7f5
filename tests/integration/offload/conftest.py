"""Real agents on 127.0.0.1 (ephemeral ports, real mTLS, real onnxruntime on the bundled digits
model), a throw-away cluster PKI made with the certs package (CertificateAuthority,
build_operational_certificate, build_server_certificate), and a revocation feed file the agents
follow."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust._proto.edgetrust.v1 import inference_pb2_grpc
from edgetrust.certs.builders import (
    build_operational_certificate,
    build_server_certificate,
    spiffe_id,
)
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.errors import UnavailableError
from edgetrust.offload.agent import Agent
from edgetrust.offload.authz import ModelPermissions
from edgetrust.offload.batching import BatchSettings
from edgetrust.offload.client import Classifier
from edgetrust.offload.config import AgentConfig, FeedConfig, TlsPaths
from edgetrust.offload.feed import FileRevocationFeed, RevocationEvent, RevocationKind

MODEL = "digits-mnv3"
TRUST_DOMAIN = "edgetrust.test"


@dataclass(frozen=True)
class Creds:
    cert: Path
    key: Path
    ca: Path


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
           ) -> tuple[Path, Path]:  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(_pem(cert))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def operational(
    ca: CertificateAuthority, identity: str, *, now: datetime | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An operational client certificate for ``identity`` (a SPIFFE ID), from a CSR."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    cert = build_operational_certificate(
        csr=csr, issuer=ca, spiffe_id=identity, lifetime=timedelta(hours=1), now=now
    )
    return cert, key


@dataclass
class Pki:
    root: Path
    ca: CertificateAuthority
    ca_path: Path
    agent_cert: Path  # serverAuth only (build_server_certificate)
    agent_key: Path
    feed_client_cert: Path  # the agent's client identity for the verifier's feed port
    feed_client_key: Path
    devices: dict[str, Creds] = field(default_factory=dict)
    _ueids: Iterator[int] = field(default_factory=lambda: itertools.count(0x100))

    def device(
        self,
        *,
        ca: CertificateAuthority | None = None,
        now: datetime | None = None,
        ueid: str | None = None,
    ) -> tuple[str, Creds]:
        """A fresh device (new UEID unless given) with an operational certificate."""
        ueid = ueid or format(next(self._ueids), "08x")
        cert, key = operational(
            ca or self.ca, spiffe_id(TRUST_DOMAIN, bytes.fromhex(ueid)), now=now
        )
        cert_path, key_path = _write(
            self.root / "devices", f"{ueid}-{cert.serial_number:x}", cert, key
        )
        creds = Creds(cert=cert_path, key=key_path, ca=self.ca_path)
        self.devices[ueid] = creds
        return ueid, creds


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(subject="CN=edgetrust test cluster CA")
    ca_path = root / "cluster-ca.crt"
    ca_path.write_bytes(_pem(ca.anchor))
    agent_key = ec.generate_private_key(ec.SECP256R1())
    agent_cert = build_server_certificate(
        public_key=agent_key.public_key(),
        issuer=ca,
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    cert_path, key_path = _write(root, "agent", agent_cert, agent_key)
    feed_cert, feed_key = operational(ca, f"spiffe://{TRUST_DOMAIN}/agent/test")
    feed_cert_path, feed_key_path = _write(root, "agent-feed-client", feed_cert, feed_key)
    return Pki(
        root=root,
        ca=ca,
        ca_path=ca_path,
        agent_cert=cert_path,
        agent_key=key_path,
        feed_client_cert=feed_cert_path,
        feed_client_key=feed_key_path,
    )


@pytest.fixture(scope="session")
def foreign_creds(pki: Pki) -> Creds:
    """A device certificate from another CA (same SPIFFE shape)."""
    other = CertificateAuthority.create(subject="CN=some other CA")
    _, creds = pki.device(ca=other)
    return creds


@pytest.fixture(scope="session")
def expired_creds(pki: Pki) -> Creds:
    _, creds = pki.device(now=datetime.now(UTC) - timedelta(hours=2))  # lived 1 h, until 1 h ago
    return creds


class Revoker:
    """Appends revocations to the feed file the agents follow."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seq = itertools.count(1)
        self._feed = FileRevocationFeed(path)

    def device(self, ueid: str, reason: str = "test") -> int:
        seq = next(self._seq)
        self._feed.append(
            RevocationEvent(
                seq=seq, kind=RevocationKind.DEVICE, ueid_hex=ueid, reason=reason,
                revoked_at_unix_ms=int(time.time() * 1000),
            )
        )  # fmt: skip
        return seq


@pytest.fixture(scope="session")
def revoker(tmp_path_factory: pytest.TempPathFactory) -> Revoker:
    return Revoker(tmp_path_factory.mktemp("feed") / "revocations.jsonl")


def agent_config(
    pki: Pki,
    revoker: Revoker,
    *,
    batching: BatchSettings | None = None,
    batching_enabled: bool = True,
    permissions: ModelPermissions | None = None,
    max_message_bytes: int = 256 * 1024,
) -> AgentConfig:
    return AgentConfig(
        listen="127.0.0.1:0",
        trust_domain=TRUST_DOMAIN,
        tls=TlsPaths(cert=pki.agent_cert, key=pki.agent_key, client_ca=pki.ca_path),
        models=(MODEL,),
        max_workers=48,
        max_message_bytes=max_message_bytes,
        batching_enabled=batching_enabled,
        batching=batching or BatchSettings(),
        permissions=permissions or ModelPermissions(),
        revocation=FeedConfig(
            feed=f"file:{revoker.path}", max_staleness_s=30.0, heartbeat_interval_ms=100
        ),
    )


def start_agent(config: AgentConfig) -> Agent:
    agent = Agent(config).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the feed's first heartbeat makes the agent serve
        try:
            agent.revocations.check_fresh()
        except UnavailableError:  # waiting for the first heartbeat
            time.sleep(0.02)
        else:
            return agent
    agent.stop()
    raise RuntimeError("the agent's revocation feed did not synchronise")


@pytest.fixture(scope="module")
def agent(pki: Pki, revoker: Revoker) -> Iterator[Agent]:
    permissions = ModelPermissions.from_mapping(default=["*"], devices={"0000dead": []})
    running = start_agent(agent_config(pki, revoker, permissions=permissions))
    yield running
    running.stop(grace=0.5)


def secure_channel(address: str, creds: Creds | None, *, ca: Path | None = None) -> grpc.Channel:
    root = ca or (creds.ca if creds else None)
    if root is None:
        raise ValueError("need a CA")
    if creds is None:
        credentials = grpc.ssl_channel_credentials(root_certificates=root.read_bytes())
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=root.read_bytes(),
            private_key=creds.key.read_bytes(),
            certificate_chain=creds.cert.read_bytes(),
        )
    return grpc.secure_channel(address, credentials)


@pytest.fixture
def stub_for(agent: Agent) -> Iterator[Callable[[Creds | None], object]]:
    channels: list[grpc.Channel] = []

    def make(creds: Creds | None, *, ca: Path | None = None) -> object:
        channel = secure_channel(agent.address, creds, ca=ca)
        channels.append(channel)
        return inference_pb2_grpc.InferenceStub(channel)

    yield make
    for channel in channels:
        channel.close()


def stream_classifier(agent: Agent, creds: Creds, **kwargs: Any) -> Classifier:
    """A remote classifier of ``creds`` on the persistent-stream transport, without fallback."""
    settings: dict[str, Any] = {"fallback": False, "transport": "stream"} | kwargs
    return Classifier(
        MODEL, "remote", agent=agent.address, cert=creds.cert, key=creds.key, ca=creds.ca,
        environ={}, **settings,
    )  # fmt: skip


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll ``predicate`` until true; the seconds it took (fails the test after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.01)
    pytest.fail(f"condition not met within {timeout} s")
