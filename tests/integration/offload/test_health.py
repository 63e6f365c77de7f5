"""Agent health follows the revocation feed: NOT_SERVING exactly while calls are refused for a
feed that has not synchronised or went silent (fail closed), SERVING again when it is back."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgetrust._proto.edgetrust.v1 import inference_pb2_grpc
from edgetrust.offload.agent import Agent
from edgetrust.offload.feed import RevocationEvent, RevocationKind
from edgetrust.offload.models import digit_samples
from tests.integration.offload.conftest import (
    Creds,
    Pki,
    Revoker,
    agent_config,
    secure_channel,
    wait_for,
)
from tests.integration.offload.test_batching_and_fallback import classify_request

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ("", "edgetrust.v1.Inference")


class SwitchableFeed:
    """A RevocationFeed that heartbeats only while ``live`` is set (a verifier that can go away)."""

    def __init__(self, *, interval: float = 0.02) -> None:
        self.live = threading.Event()
        self._interval = interval
        self._closed = threading.Event()

    def watch(self, after_seq: int) -> Iterator[RevocationEvent]:
        while not self._closed.is_set():
            if self.live.is_set():
                yield RevocationEvent(seq=after_seq, kind=RevocationKind.HEARTBEAT)
            self._closed.wait(self._interval)

    def close(self) -> None:
        self._closed.set()


@pytest.fixture
def switchable(pki: Pki, revoker: Revoker) -> Iterator[tuple[Agent, SwitchableFeed]]:
    base = agent_config(pki, revoker)
    config = dataclasses.replace(
        base, revocation=dataclasses.replace(base.revocation, max_staleness_s=0.3)
    )
    feed = SwitchableFeed()
    running = Agent(config, feed=feed).start()
    yield running, feed
    running.stop(grace=0.2)


@pytest.fixture(scope="module")
def device(pki: Pki) -> Creds:
    return pki.device()[1]


def statuses(address: str, creds: Creds) -> list[int]:
    with secure_channel(address, creds) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return [
            stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=5).status for s in SERVICES
        ]


def classify_code(address: str, creds: Creds) -> grpc.StatusCode:
    with secure_channel(address, creds) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        try:
            stub.Classify(classify_request(digit_samples()[0].path), timeout=5)
        except grpc.RpcError as e:
            return e.code()  # type: ignore[attr-defined,no-any-return]
    return grpc.StatusCode.OK


def test_health_is_not_serving_until_the_feed_has_synchronised(
    switchable: tuple[Agent, SwitchableFeed], device: Creds
) -> None:
    agent, feed = switchable
    assert statuses(agent.address, device) == [NOT_SERVING, NOT_SERVING]
    assert classify_code(agent.address, device) is grpc.StatusCode.UNAVAILABLE
    feed.live.set()
    wait_for(lambda: statuses(agent.address, device) == [SERVING, SERVING])
    assert classify_code(agent.address, device) is grpc.StatusCode.OK


def test_health_is_not_serving_while_the_feed_is_stale_and_recovers(
    switchable: tuple[Agent, SwitchableFeed], device: Creds
) -> None:
    agent, feed = switchable
    feed.live.set()
    wait_for(lambda: statuses(agent.address, device) == [SERVING, SERVING])
    feed.live.clear()  # the verifier goes silent: stale after 0.3 s
    wait_for(lambda: statuses(agent.address, device) == [NOT_SERVING, NOT_SERVING])
    assert classify_code(agent.address, device) is grpc.StatusCode.UNAVAILABLE
    feed.live.set()
    wait_for(lambda: statuses(agent.address, device) == [SERVING, SERVING])
    assert classify_code(agent.address, device) is grpc.StatusCode.OK


def test_health_watch_streams_the_feed_transitions(
    switchable: tuple[Agent, SwitchableFeed], device: Creds
) -> None:
    agent, feed = switchable
    feed.live.set()
    wait_for(lambda: statuses(agent.address, device) == [SERVING, SERVING])
    with secure_channel(agent.address, device) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert next(stream).status == SERVING
        feed.live.clear()
        assert next(stream).status == NOT_SERVING
        feed.live.set()
        assert next(stream).status == SERVING
        stream.cancel()


def test_health_is_not_serving_after_stop_begins(
    switchable: tuple[Agent, SwitchableFeed], device: Creds
) -> None:
    agent, feed = switchable
    feed.live.set()
    wait_for(lambda: statuses(agent.address, device) == [SERVING, SERVING])
    agent._health.enter_graceful_shutdown()  # what stop() does first
    assert statuses(agent.address, device) == [NOT_SERVING, NOT_SERVING]
