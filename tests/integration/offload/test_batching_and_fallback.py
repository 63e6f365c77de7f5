"""Dynamic batching on a real agent (each caller its own answer), back-pressure, deadlines, the
client's local fallback, and revocations followed over gRPC from a verifier-like feed server."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from edgetrust._proto.edgetrust.v1 import inference_pb2, inference_pb2_grpc, revocation_pb2_grpc
from edgetrust.errors import ConfigError, OverloadedError, UnavailableError
from edgetrust.offload.agent import Agent
from edgetrust.offload.batching import BatchSettings
from edgetrust.offload.client import Classifier
from edgetrust.offload.config import AgentConfig, FeedConfig
from edgetrust.offload.feed import RevocationEvent, RevocationKind, event_to_proto
from edgetrust.offload.models import digit_samples, get_model
from tests.integration.offload.conftest import (
    MODEL,
    Creds,
    Pki,
    Revoker,
    agent_config,
    secure_channel,
    start_agent,
    wait_for,
)


@pytest.fixture(scope="module")
def device(pki: Pki) -> Creds:
    return pki.device()[1]


def classify_request(path: Any, request_id: str = "") -> Any:
    return inference_pb2.ClassifyRequest(
        model=MODEL, image=path.read_bytes(), top_k=1, request_id=request_id
    )


# -- batching ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batching_agent(pki: Pki, revoker: Revoker) -> Iterator[Agent]:
    # a wide batching window so that concurrent callers surely share runs
    settings = BatchSettings(max_batch_size=16, max_queue_delay_ms=150, early_dispatch=False)
    running = start_agent(agent_config(pki, revoker, batching=settings))
    yield running
    running.stop(grace=0.5)


def test_concurrent_callers_each_get_their_own_answer(batching_agent: Agent, device: Creds) -> None:
    samples = digit_samples()
    local = get_model(MODEL).backend()
    expected = {s.path.name: local.classify(s.path).index for s in samples}
    assert len(set(expected.values())) == 10  # distinct images, distinct answers
    with secure_channel(batching_agent.address, device) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        barrier = threading.Barrier(len(samples))

        def one(sample: Any) -> tuple[str, Any]:
            barrier.wait(5)
            return sample.path.name, stub.Classify(
                classify_request(sample.path, sample.path.name), timeout=10
            )

        with futures.ThreadPoolExecutor(len(samples)) as pool:
            answers = list(pool.map(one, samples))
    for name, response in answers:
        assert response.request_id == name
        assert response.top[0].index == expected[name], name
    sizes = [response.batch_size for _, response in answers]
    assert max(sizes) > 1, sizes  # they were really batched
    stats = batching_agent.models[MODEL].batcher.stats  # type: ignore[union-attr]
    assert stats.requests >= len(samples)


def test_deadline_shorter_than_the_batching_window_is_deadline_exceeded(
    batching_agent: Agent, device: Creds
) -> None:
    with secure_channel(batching_agent.address, device) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Classify(classify_request(digit_samples()[0].path), timeout=0.05)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]


# -- back-pressure ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tight_agent(pki: Pki, revoker: Revoker) -> Iterator[Agent]:
    # the batch waits 1.5 s to fill up, and only 2 requests may wait: the 3rd is refused
    settings = BatchSettings(
        max_batch_size=64, max_queue_delay_ms=1500, max_queue_size=2, early_dispatch=False
    )
    running = start_agent(agent_config(pki, revoker, batching=settings))
    yield running
    running.stop(grace=0.5)


def test_full_queue_is_resource_exhausted(tight_agent: Agent, device: Creds) -> None:
    path = digit_samples()[0].path
    with secure_channel(tight_agent.address, device) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        waiting = [stub.Classify.future(classify_request(path), timeout=10) for _ in range(2)]
        batcher = tight_agent.models[MODEL].batcher
        assert batcher is not None
        wait_for(lambda: batcher.queued == 2)
        with pytest.raises(grpc.RpcError) as info:
            stub.Classify(classify_request(path), timeout=5)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        tags = dict(info.value.trailing_metadata())  # type: ignore[attr-defined]
        assert tags["edgetrust-error"] == "overloaded"
        assert all(w.result(timeout=10).top for w in waiting)  # the queued ones are served


def test_client_retries_then_reports_overloaded(tight_agent: Agent, device: Creds) -> None:
    path = digit_samples()[0].path
    with secure_channel(tight_agent.address, device) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        waiting = [stub.Classify.future(classify_request(path), timeout=10) for _ in range(2)]
        batcher = tight_agent.models[MODEL].batcher
        assert batcher is not None
        wait_for(lambda: batcher.queued == 2)
        with (
            Classifier(MODEL, "remote", agent=tight_agent.address, cert=device.cert,
                       key=device.key, ca=device.ca, retries=1, fallback=False,
                       environ={}) as classifier,
            pytest.raises(OverloadedError),
        ):  # fmt: skip
            classifier.classify(path)
        for w in waiting:
            w.result(timeout=10)


# -- fallback ---------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_falls_back_to_local_when_the_agent_is_down(
    device: Creds, caplog: pytest.LogCaptureFixture
) -> None:
    sample = digit_samples()[4]
    address = f"127.0.0.1:{closed_port()}"
    with (
        caplog.at_level(logging.WARNING, logger="edgetrust.offload.client"),
        Classifier(MODEL, agent=address, cert=device.cert, key=device.key, ca=device.ca,
                   timeout=2, retries=1, environ={}) as classifier,
    ):  # fmt: skip
        prediction = classifier.classify(sample.path)
        again = classifier.classify(sample.path)  # the agent is skipped for a while now
    assert prediction.backend == "local"
    assert again.backend == "local"
    assert prediction.index == sample.index
    assert any("classifying locally" in r.getMessage() for r in caplog.records)


def test_no_fallback_when_it_is_turned_off(device: Creds) -> None:
    with (
        Classifier(MODEL, "remote", agent=f"127.0.0.1:{closed_port()}", cert=device.cert,
                   key=device.key, ca=device.ca, fallback=False, retries=0,
                   environ={}) as classifier,
        pytest.raises(UnavailableError),
    ):  # fmt: skip
        classifier.classify(digit_samples()[0].path)


def test_backend_comes_from_the_environment(agent: Agent, device: Creds) -> None:
    env = {
        "EDGETRUST_AGENT": agent.address,
        "EDGETRUST_CERT": str(device.cert),
        "EDGETRUST_KEY": str(device.key),
        "EDGETRUST_CA": str(device.ca),
    }
    sample = digit_samples()[2]
    with Classifier(environ={**env, "EDGETRUST_BACKEND": "remote"}) as remote:
        assert remote.classify(sample.path).backend == "remote"
    with Classifier(environ={**env, "EDGETRUST_BACKEND": "local"}) as local:
        assert local.classify(sample.path).backend == "local"


def test_agent_stopped_mid_session_falls_back(pki: Pki, revoker: Revoker, device: Creds) -> None:
    running = start_agent(agent_config(pki, revoker))
    sample = digit_samples()[5]
    with Classifier(
        MODEL, agent=running.address, cert=device.cert, key=device.key, ca=device.ca,
        timeout=2, retries=0, environ={},
    ) as classifier:  # fmt: skip
        assert classifier.classify(sample.path).backend == "remote"
        running.stop(grace=0.2)
        assert classifier.classify(sample.path).backend == "local"


# -- revocations over gRPC --------------------------------------------------------------------


class FeedServer(revocation_pb2_grpc.RevocationsServicer):  # type: ignore[misc]
    """A verifier-like Revocations service: replay, heartbeat, follow (revocation.proto)."""

    def __init__(self) -> None:
        self.events: list[RevocationEvent] = []
        self.cond = threading.Condition()
        self.stopping = False
        self.peers: list[str] = []

    def revoke(self, ueid: str) -> int:
        with self.cond:
            seq = len(self.events) + 1
            self.events.append(RevocationEvent(seq=seq, kind=RevocationKind.DEVICE, ueid_hex=ueid))
            self.cond.notify_all()
            return seq

    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        self.peers.extend(
            i.decode()
            for i in (context.peer_identities() or [])  # type: ignore[union-attr]
        )
        after = int(request.after_seq)
        interval = (request.heartbeat_interval_ms or 2000) / 1000
        while context.is_active() and not self.stopping:
            with self.cond:
                pending = [e for e in self.events if e.seq > after]
                if not pending:
                    self.cond.wait(interval)
                    pending = [e for e in self.events if e.seq > after]
                head = len(self.events)
            for event in pending:
                after = event.seq
                yield event_to_proto(event)
            if not pending:
                yield event_to_proto(RevocationEvent(seq=head, kind=RevocationKind.HEARTBEAT))


@pytest.fixture
def feed_server(pki: Pki) -> Iterator[tuple[FeedServer, int]]:
    servicer = FeedServer()
    server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.so_reuseport", 0)])
    revocation_pb2_grpc.add_RevocationsServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials(
        [(pki.agent_key.read_bytes(), pki.agent_cert.read_bytes())],
        root_certificates=pki.ca_path.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield servicer, port
    with servicer.cond:
        servicer.stopping = True
        servicer.cond.notify_all()
    server.stop(0.5).wait()


def grpc_feed_config(pki: Pki, base: AgentConfig, target: str) -> AgentConfig:
    return AgentConfig(
        listen=base.listen,
        trust_domain=base.trust_domain,
        tls=base.tls,
        models=base.models,
        revocation=FeedConfig(
            feed=target, heartbeat_interval_ms=200, server_name="localhost",
            cert=pki.feed_client_cert, key=pki.feed_client_key,
        ),
    )  # fmt: skip


def test_revocation_followed_over_grpc_with_mtls(
    pki: Pki, revoker: Revoker, feed_server: tuple[FeedServer, int]
) -> None:
    servicer, port = feed_server
    config = grpc_feed_config(pki, agent_config(pki, revoker), f"127.0.0.1:{port}")
    running = start_agent(config)
    try:
        ueid, creds = pki.device()
        with secure_channel(running.address, creds) as channel:
            stub = inference_pb2_grpc.InferenceStub(channel)
            assert stub.Classify(classify_request(digit_samples()[0].path), timeout=5).top
            servicer.revoke(ueid)
            revoked_at = time.monotonic()

            def refused() -> bool:
                try:
                    stub.Classify(classify_request(digit_samples()[0].path), timeout=5)
                except grpc.RpcError as e:
                    return e.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined, no-any-return]
                return False

            wait_for(refused, timeout=5)
            assert time.monotonic() - revoked_at < 1.5
    finally:
        running.stop(grace=0.2)
    assert servicer.peers  # the agent presented its certificate to the feed


def test_agent_whose_feed_is_unreachable_refuses_calls(
    pki: Pki, revoker: Revoker, device: Creds
) -> None:
    config = grpc_feed_config(pki, agent_config(pki, revoker), f"127.0.0.1:{closed_port()}")
    running = Agent(config).start()  # fail closed: never synchronised
    try:
        with secure_channel(running.address, device) as channel:
            stub = inference_pb2_grpc.InferenceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Classify(classify_request(digit_samples()[0].path), timeout=5)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert "revocation feed" in info.value.details()  # type: ignore[attr-defined]
    finally:
        running.stop(grace=0.2)


def test_server_only_certificate_for_the_grpc_feed_is_a_config_error(
    pki: Pki, revoker: Revoker
) -> None:
    base = agent_config(pki, revoker)  # tls.cert comes from build_server_certificate
    config = AgentConfig(
        listen=base.listen,
        trust_domain=base.trust_domain,
        tls=base.tls,
        models=base.models,
        revocation=FeedConfig(feed=f"127.0.0.1:{closed_port()}"),
    )
    with pytest.raises(ConfigError, match="no clientAuth extended key usage"):
        Agent(config)


def test_revocation_cuts_a_unary_call_in_flight(
    tight_agent: Agent, pki: Pki, revoker: Revoker
) -> None:
    ueid, creds = pki.device()
    with secure_channel(tight_agent.address, creds) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        # the tight agent holds a batch 1.5 s to fill it: this call waits in the queue
        call = stub.Classify.future(classify_request(digit_samples()[0].path), timeout=10)
        batcher = tight_agent.models["digits-mnv3"].batcher
        assert batcher is not None
        wait_for(lambda: batcher.queued >= 1)
        revoker.device(ueid, reason="cut in flight")
        revoked_at = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            call.result(timeout=10)
        elapsed = time.monotonic() - revoked_at
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "revoked during the call" in info.value.details()  # type: ignore[attr-defined]
    assert elapsed < 1.0  # well before the 1.5 s batch would have left
