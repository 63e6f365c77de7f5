"""The agent's cap on open streams (agent.max_streams) against real clients: a stream beyond the
cap is refused at once, the client sends that call and its calls for a while unary (no error
reaches the caller), then tries a stream again; the agent counts and logs the refusals."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from edgetrust.errors import StreamLimitError
from edgetrust.offload.agent import Agent
from edgetrust.offload.models import digit_samples
from tests.integration.offload.conftest import (
    Pki,
    Revoker,
    agent_config,
    start_agent,
    wait_for,
)
from tests.integration.offload.conftest import (
    stream_classifier as classifier,
)


def capped_agent(pki: Pki, revoker: Revoker, *, workers: int, streams: int) -> Agent:
    config = agent_config(pki, revoker)
    return start_agent(dataclasses.replace(config, max_workers=workers, max_streams=streams))


@pytest.fixture
def agent_2_of_4(pki: Pki, revoker: Revoker) -> Iterator[Agent]:
    running = capped_agent(pki, revoker, workers=4, streams=2)
    yield running
    running.stop(grace=0.5)


def test_more_clients_than_the_cap_all_get_their_answers(
    agent_2_of_4: Agent, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    agent, clients = agent_2_of_4, 6
    samples = digit_samples()
    classifiers = [classifier(agent, pki.device()[1]) for _ in range(clients)]
    first_round = threading.Barrier(clients + 1)
    second_round = threading.Barrier(clients + 1)
    answers: list[list[tuple[str, int]]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        c = classifiers[n]
        try:
            p = c.classify(samples[n].path)
            answers[n].append((p.backend, p.index))
            first_round.wait(20)
            for s in samples:  # continuously: the open streams stay open meanwhile
                p = c.classify(s.path)
                answers[n].append((p.backend, p.index))
            second_round.wait(20)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            first_round.abort()
            second_round.abort()

    with caplog.at_level(logging.WARNING, logger="edgetrust.offload.stream_admission"):
        threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        first_round.wait(20)
        open_streams = [c.remote is not None and c.remote.stream is not None and
                        c.remote.stream.is_open for c in classifiers]  # fmt: skip
        second_round.wait(20)
        metrics = agent.metrics()
        for t in threads:
            t.join(20)
    for c in classifiers:
        c.close()
    assert errors == []
    for n, got in enumerate(answers):  # every call answered, by the agent, correctly
        assert got == [("remote", samples[n].index)] + [("remote", s.index) for s in samples]
    assert open_streams.count(True) == 2  # the other four went unary
    assert metrics["max_streams"] == 2
    assert metrics["streams_open"] == 2
    assert metrics["streams_open_peak"] == 2
    assert metrics["streams_refused"] >= clients - 2
    assert metrics["streams_opened"] == 2  # the refused clients did not retry within the back-off
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals
    assert refusals[0].startswith("refused 1 stream(s): agent.max_streams = 2 streams are open")
    wait_for(lambda: agent.metrics()["streams_open"] == 0)  # closed clients gave them back


def test_refused_client_goes_unary_then_tries_a_stream_again(pki: Pki, revoker: Revoker) -> None:
    agent = capped_agent(pki, revoker, workers=3, streams=1)
    sample = digit_samples()[4]
    try:
        holder, waiting = classifier(agent, pki.device()[1]), classifier(agent, pki.device()[1])
        with holder, waiting:
            assert waiting.remote is not None
            assert waiting.remote.stream is not None
            waiting.remote.stream_retry_after_s = 0.3
            assert holder.classify(sample.path).index == sample.index  # holds the one stream
            for _ in range(3):  # refused once, then unary within the back-off: no new attempt
                assert waiting.classify(sample.path).index == sample.index
            assert not waiting.remote.stream.is_open
            assert agent.metrics()["streams_refused"] == 1
            holder.close()
            wait_for(lambda: agent.metrics()["streams_open"] == 0)
            time.sleep(0.3)  # the back-off is over: a stream again
            assert waiting.classify(sample.path).index == sample.index
            assert waiting.remote.stream.is_open
            metrics = agent.metrics()
            assert (metrics["streams_refused"], metrics["streams_opened"]) == (1, 2)
    finally:
        agent.stop(grace=0.5)


def test_agent_without_streams_serves_every_call_unary(
    pki: Pki, revoker: Revoker, caplog: pytest.LogCaptureFixture
) -> None:
    agent = capped_agent(pki, revoker, workers=2, streams=0)
    samples = digit_samples()[:4]
    _, creds = pki.device()
    try:
        with classifier(agent, creds) as c:
            assert [c.classify(s.path).index for s in samples] == [s.index for s in samples]
            assert c.remote is not None
            with pytest.raises(StreamLimitError, match=r"its limit \(agent\.max_streams\)"):
                list(c.remote.classify_stream([samples[0].path], timeout_s=5))
    finally:
        with caplog.at_level(logging.INFO, logger="edgetrust.offload.agent"):
            agent.stop(grace=0.5)
    assert agent.metrics()["streams_refused"] == 2  # the back-off's one, classify_stream's one
    stopped = [r.getMessage() for r in caplog.records if "agent stopped" in r.getMessage()]
    assert stopped == [f"agent stopped {agent.metrics()}"]
    assert "'streams_refused': 2" in stopped[0]
