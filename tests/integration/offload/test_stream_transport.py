"""The client's persistent-stream transport against a real agent: one stream for successive
calls, concurrent callers, per-call timeout, revocation cutting the stream, the unary option."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest

from edgetrust.errors import DeadlineExceededError, RevokedError
from edgetrust.offload.agent import Agent
from edgetrust.offload.batching import BatchSettings
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


def test_successive_calls_travel_on_one_stream(agent: Agent, pki: Pki) -> None:
    _, creds = pki.device()
    samples = digit_samples()
    with classifier(agent, creds) as c:
        got = [c.classify(s.path).index for s in samples]
        assert c.remote is not None
        assert c.remote.stream is not None
        assert c.remote.stream.is_open
        assert agent.tracker.active == 1  # one stream: one call on the agent
    assert got == [s.index for s in samples]
    wait_for(lambda: agent.tracker.active == 0)  # closing gave the agent's thread back


def test_concurrent_callers_on_one_classifier_each_get_their_answer(agent: Agent, pki: Pki) -> None:
    _, creds = pki.device()
    samples = digit_samples()
    errors: list[BaseException] = []
    with classifier(agent, creds) as c:

        def work() -> None:
            try:
                for s in samples:
                    assert c.classify(s.path).index == s.index
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []


def test_unary_transport_opens_no_stream(agent: Agent, pki: Pki) -> None:
    _, creds = pki.device()
    sample = digit_samples()[3]
    with classifier(agent, creds, transport="unary") as c:
        assert c.remote is not None
        assert c.remote.stream is None
        assert c.classify(sample.path).index == sample.index


def test_revocation_cuts_the_stream_and_the_next_call_is_refused(
    agent: Agent, pki: Pki, revoker: Revoker
) -> None:
    ueid, creds = pki.device()
    sample = digit_samples()[1]
    with classifier(agent, creds, fallback=True) as c:
        assert c.classify(sample.path).backend == "remote"
        seq = revoker.device(ueid, reason="stream device stolen")
        wait_for(lambda: agent.revocations.last_seq >= seq)
        wait_for(lambda: agent.tracker.active == 0)  # the agent ended the idle stream
        for _ in range(2):  # a fresh stream each time, refused; never hidden by the fallback
            with pytest.raises(RevokedError, match="stream device stolen"):
                c.classify(sample.path)


@pytest.fixture(scope="module")
def slow_agent(pki: Pki, revoker: Revoker) -> Iterator[Agent]:
    # a lone request waits 300 ms for company in the batcher
    settings = BatchSettings(max_batch_size=8, max_queue_delay_ms=300, early_dispatch=False)
    running = start_agent(agent_config(pki, revoker, batching=settings))
    yield running
    running.stop(grace=0.5)


def test_late_answer_on_the_stream_is_deadline_exceeded_then_the_stream_recovers(
    slow_agent: Agent, pki: Pki
) -> None:
    _, creds = pki.device()
    sample = digit_samples()[6]
    with classifier(slow_agent, creds, timeout=0.1, retries=0) as c:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            c.classify(sample.path)
        assert time.monotonic() - started < 0.3
        assert c.remote is not None
        c.remote.timeout_s = 5.0  # the same backend: a new stream, no stale answer
        assert c.classify(sample.path).index == sample.index
        assert c.classify(sample.path).index == sample.index


def test_late_answer_on_the_stream_falls_back_to_local(slow_agent: Agent, pki: Pki) -> None:
    _, creds = pki.device()
    sample = digit_samples()[7]
    with classifier(slow_agent, creds, timeout=0.1, retries=0, fallback=True) as c:
        prediction = c.classify(sample.path)
    assert (prediction.backend, prediction.index) == ("local", sample.index)


def test_agent_ends_an_idle_stream_and_the_client_carries_on(pki: Pki, revoker: Revoker) -> None:
    config = dataclasses.replace(agent_config(pki, revoker), stream_idle_s=0.2)
    running = start_agent(config)
    _, creds = pki.device()
    sample = digit_samples()[8]
    try:
        with classifier(running, creds, retries=0) as c:
            assert c.classify(sample.path).index == sample.index
            assert running.tracker.active == 1
            wait_for(lambda: running.tracker.active == 0)  # the agent's thread is free again
            assert c.classify(sample.path).index == sample.index  # on a fresh stream
    finally:
        running.stop(grace=0.5)
