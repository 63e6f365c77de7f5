"""The agent's live metrics over real HTTP while real mTLS clients classify: requests by model
and status, the inference / queue / batch size histograms, the streams gauge, the revocation
feed's age and the revoked identities."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from edgetrust._proto.edgetrust.v1 import inference_pb2, inference_pb2_grpc
from edgetrust.errors import ConfigError
from edgetrust.offload.agent import Agent
from edgetrust.offload.config import AgentConfig
from edgetrust.offload.models import digit_samples
from tests.integration.offload.conftest import (
    MODEL,
    Pki,
    Revoker,
    agent_config,
    secure_channel,
    start_agent,
    stream_classifier,
    wait_for,
)
from tests.scrape import Samples, scrape, value

P = "edgetrust_agent_"
CALLS = 5


@pytest.fixture
def metered(pki: Pki, revoker: Revoker) -> Iterator[Agent]:
    config = dataclasses.replace(agent_config(pki, revoker), metrics_listen="127.0.0.1:0")
    running = start_agent(config)
    yield running
    running.stop(grace=0.5)


def _scrape(agent: Agent) -> Samples:
    assert agent.metrics_endpoint is not None
    return scrape(agent.metrics_endpoint.url)


def test_classifications_move_the_counters_and_histograms(metered: Agent, pki: Pki) -> None:
    samples = digit_samples()
    before = _scrape(metered)
    assert value(before, f"{P}requests_total", model=MODEL, code="OK") == 0
    with secure_channel(metered.address, pki.device()[1]) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        for sample in itertools.islice(itertools.cycle(samples), CALLS):
            request = inference_pb2.ClassifyRequest(
                model=MODEL, image=sample.path.read_bytes(), top_k=1
            )
            stub.Classify(request, timeout=20)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Classify(inference_pb2.ClassifyRequest(model="no-such", image=b"x"), timeout=20)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND

    after = _scrape(metered)
    assert value(after, f"{P}requests_total", model=MODEL, code="OK") == CALLS
    assert value(after, f"{P}requests_total", model="-", code="NOT_FOUND") == 1
    assert value(after, f"{P}inference_seconds_count", model=MODEL) == CALLS
    assert value(after, f"{P}inference_seconds_sum", model=MODEL) > 0
    assert value(after, f"{P}queue_seconds_count", model=MODEL) == CALLS
    batches = value(after, f"{P}batch_size_count", model=MODEL)
    assert 1 <= batches <= CALLS
    assert value(after, f"{P}batch_size_sum", model=MODEL) == CALLS
    assert value(after, f"{P}calls_active") == 0
    assert value(after, f"{P}streams_max") == metered.config.stream_limit


def test_streams_gauge_and_counters(metered: Agent, pki: Pki) -> None:
    classifier = stream_classifier(metered, pki.device()[1])
    try:
        classifier.classify(digit_samples()[0].path)
        samples = _scrape(metered)
        assert value(samples, f"{P}streams_open") == 1
        assert value(samples, f"{P}streams_opened_total") == 1
        assert value(samples, f"{P}streams_refused_total") == 0
        assert value(samples, f"{P}requests_total", model=MODEL, code="OK") == 1
    finally:
        classifier.close()
    wait_for(lambda: value(_scrape(metered), f"{P}streams_open") == 0)


def test_feed_age_and_revoked_identities(metered: Agent, pki: Pki, revoker: Revoker) -> None:
    samples = _scrape(metered)
    # the file feed heartbeats every 0.1 s: the age stays well under its staleness bound
    age = value(samples, f"{P}revocation_feed_age_seconds")
    assert 0 <= age < 5
    revoked = value(samples, f"{P}revoked_identities")
    ueid, _ = pki.device()
    revoker.device(ueid)
    wait_for(lambda: value(_scrape(metered), f"{P}revoked_identities") == revoked + 1)


def test_feed_age_grows_while_the_feed_is_silent(pki: Pki, revoker: Revoker) -> None:
    config = dataclasses.replace(agent_config(pki, revoker), metrics_listen="127.0.0.1:0")
    agent = start_agent(config)
    try:
        assert agent._follower is not None
        agent._follower.stop()
        first = value(_scrape(agent), f"{P}revocation_feed_age_seconds")
        wait_for(lambda: value(_scrape(agent), f"{P}revocation_feed_age_seconds") > first + 0.3)
    finally:
        agent.stop(grace=0.5)


def test_no_feed_no_age_gauge(pki: Pki, revoker: Revoker) -> None:
    base = agent_config(pki, revoker)
    config = dataclasses.replace(
        base,
        metrics_listen="127.0.0.1:0",
        revocation=dataclasses.replace(base.revocation, feed="none"),
    )
    with Agent(config) as agent:
        samples = _scrape(agent)
    assert not any(name == f"{P}revocation_feed_age_seconds" for name, _ in samples)
    assert value(samples, f"{P}revoked_identities") == 0


def test_without_metrics_listen_no_endpoint(pki: Pki, revoker: Revoker) -> None:
    agent = Agent(agent_config(pki, revoker))
    assert agent.metrics_endpoint is None


def test_bad_metrics_address_is_a_config_error(pki: Pki, revoker: Revoker) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen must be HOST:PORT, not 'nowhere'"):
        dataclasses.replace(agent_config(pki, revoker), metrics_listen="nowhere")


def test_metrics_key_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[metrics]\nlisten = "127.0.0.1:9464"\n')
    assert AgentConfig.load(path, environ={}).metrics_listen == "127.0.0.1:9464"
    env = {"EDGETRUST_METRICS_LISTEN": "127.0.0.1:0"}
    assert AgentConfig.load(path, environ=env).metrics_listen == "127.0.0.1:0"
    assert AgentConfig.load(None, environ={}).metrics_listen is None
    path.write_text("[metrics]\nport = 9464\n")
    with pytest.raises(ConfigError, match="unknown keys port"):
        AgentConfig.load(path, environ={})
