"""Real agents on 127.0.0.1 (ephemeral ports, real mTLS, real onnxruntime on the bundled digits
model), a throw-away cluster PKI, and a revocation feed file the agents follow."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from edgetrust._proto.edgetrust.v1 import inference_pb2_grpc
from edgetrust.errors import UnavailableError
from edgetrust.offload.agent import Agent
from edgetrust.offload.authz import ModelPermissions
from edgetrust.offload.batching import BatchSettings
from edgetrust.offload.config import AgentConfig, FeedConfig, TlsPaths
from edgetrust.offload.feed import FileRevocationFeed, RevocationEvent, RevocationKind
from tests.unit.offload.pki import (
    TRUST_DOMAIN,
    Issued,
    issue_device,
    issue_server,
    make_ca,
)

MODEL = "digits-mnv3"


@dataclass(frozen=True)
class Creds:
    cert: Path
    key: Path
    ca: Path


@dataclass
class Pki:
    root: Path
    ca: Issued
    ca_path: Path
    agent_cert: Path
    agent_key: Path
    devices: dict[str, Creds] = field(default_factory=dict)
    _ueids: Iterator[int] = field(default_factory=lambda: itertools.count(0x100))

    def device(
        self,
        *,
        ca: Issued | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        ueid: str | None = None,
    ) -> tuple[str, Creds]:
        """A fresh device (new UEID unless given) with an operational certificate."""
        ueid = ueid or format(next(self._ueids), "08x")
        issued = issue_device(
            ca or self.ca, ueid, trust_domain=TRUST_DOMAIN, not_before=not_before,
            not_after=not_after,
        )  # fmt: skip
        cert, key = issued.write(self.root / "devices", f"{ueid}-{issued.cert.serial_number:x}")
        creds = Creds(cert=cert, key=key, ca=self.ca_path)
        self.devices[ueid] = creds
        return ueid, creds


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    ca_path = root / "cluster-ca.crt"
    ca_path.write_bytes(ca.cert_pem)
    agent_cert, agent_key = issue_server(ca).write(root, "agent")
    return Pki(root=root, ca=ca, ca_path=ca_path, agent_cert=agent_cert, agent_key=agent_key)


@pytest.fixture(scope="session")
def foreign_creds(pki: Pki) -> Creds:
    """A device certificate from another CA (same SPIFFE shape)."""
    other = make_ca("some other CA")
    _, creds = pki.device(ca=other)
    return creds


@pytest.fixture(scope="session")
def expired_creds(pki: Pki) -> Creds:
    now = datetime.now(UTC)
    _, creds = pki.device(not_before=now - timedelta(hours=2), not_after=now - timedelta(hours=1))
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


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll ``predicate`` until true; the seconds it took (fails the test after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.01)
    pytest.fail(f"condition not met within {timeout} s")
