"""The persistent-stream transport of the remote backend, against a fake ``ClassifyStream`` call:
reuse, per-call timeout, errors, replacement of an ended stream, idle close, close."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from edgetrust.errors import (
    DeadlineExceededError,
    InferenceError,
    RevokedError,
    StreamLimitError,
    UnavailableError,
)
from edgetrust.offload.persistent_stream import PersistentStream
from tests.unit.offload.test_client import FakeRpcError

Answer = Callable[[Any], Any]  # request -> response, None (never answer) or an exception


class FakeCall:
    """What ``stub.ClassifyStream(requests)`` returns: an agent answers in its own thread."""

    def __init__(self, requests: Iterator[Any], answer: Answer) -> None:
        self._responses: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancelled = threading.Event()
        self.half_closed = threading.Event()
        self.ended = False
        threading.Thread(target=self._serve, args=(requests, answer), daemon=True).start()

    def _serve(self, requests: Iterator[Any], answer: Answer) -> None:
        for request in requests:
            reply = answer(request)
            if reply is not None:
                self._responses.put(reply)
        self.half_closed.set()

    def __iter__(self) -> FakeCall:
        return self

    def __next__(self) -> Any:
        while not self.cancelled.is_set():
            try:
                item = self._responses.get(timeout=0.005)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                self.ended = True
                raise item
            return item
        raise FakeRpcError(grpc.StatusCode.CANCELLED, "cancelled")

    def cancel(self) -> None:
        self.ended = True
        self.cancelled.set()

    def done(self) -> bool:
        return self.ended


class FakeAgent:
    """Opens :class:`FakeCall` s and remembers them."""

    def __init__(self, answer: Answer = lambda request: f"answer to {request}") -> None:
        self.answer = answer
        self.calls: list[FakeCall] = []

    def __call__(self, requests: Iterator[Any]) -> FakeCall:
        call = FakeCall(requests, self.answer)
        self.calls.append(call)
        return call


def make(agent: FakeAgent, *, idle_s: float = 60.0) -> PersistentStream:
    return PersistentStream(agent, agent="a:1", idle_s=idle_s)


def test_successive_calls_share_one_stream() -> None:
    agent = FakeAgent()
    stream = make(agent)
    try:
        assert [stream.exchange(i, timeout=5) for i in range(3)] == [
            "answer to 0", "answer to 1", "answer to 2",
        ]  # fmt: skip
        assert len(agent.calls) == 1
        assert stream.is_open
    finally:
        stream.close()


def test_late_answer_is_deadline_exceeded_and_the_stream_is_replaced() -> None:
    agent = FakeAgent(lambda request: None if request == "slow" else "ok")
    stream = make(agent)
    try:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match=r"no answer within 0\.05 s"):
            stream.exchange("slow", timeout=0.05)
        assert 0.04 <= time.monotonic() - started < 1.0
        assert agent.calls[0].cancelled.is_set()  # the late answer can never be read
        assert stream.exchange("fast", timeout=5) == "ok"
        assert len(agent.calls) == 2
    finally:
        stream.close()


def test_a_timeout_applies_to_its_own_call_only() -> None:
    stream = make(FakeAgent(lambda request: time.sleep(0.03) or "ok"))
    try:
        for _ in range(5):  # 5 x 30 ms > 100 ms: each call has its own deadline
            assert stream.exchange("x", timeout=0.1) == "ok"
    finally:
        stream.close()


def test_agent_status_becomes_our_error_and_ends_the_stream() -> None:
    revoked = FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "revoked: stolen", "revoked")
    agent = FakeAgent(lambda request: revoked if request == "bad" else "ok")
    stream = make(agent)
    try:
        with pytest.raises(RevokedError, match="revoked: stolen"):
            stream.exchange("bad", timeout=5)
        assert agent.calls[0].cancelled.is_set()
        assert stream.exchange("good", timeout=5) == "ok"
        assert len(agent.calls) == 2
    finally:
        stream.close()


def test_stream_refused_for_the_agents_stream_limit_is_a_stream_limit_error() -> None:
    refusal = FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "at the limit", "stream-limit")
    agent = FakeAgent(lambda request: refusal)
    stream = make(agent)
    try:
        with pytest.raises(StreamLimitError, match="agent a:1: at the limit"):
            stream.exchange("x", timeout=5)
        assert not stream.is_open  # the next call opens a new stream
        assert agent.calls[0].cancelled.is_set()
    finally:
        stream.close()


def test_stream_ended_without_a_status_is_unavailable() -> None:
    stream = make(FakeAgent(lambda request: StopIteration()))
    try:
        with pytest.raises(UnavailableError, match="ended the stream"):
            stream.exchange("x", timeout=5)
    finally:
        stream.close()


def test_error_without_a_status_is_an_inference_error() -> None:
    stream = make(FakeAgent(lambda request: grpc.RpcError()))
    try:
        with pytest.raises(InferenceError):
            stream.exchange("x", timeout=5)
    finally:
        stream.close()


def test_stream_ended_by_the_agent_while_idle_is_replaced_before_use() -> None:
    agent = FakeAgent()
    stream = make(agent)
    try:
        stream.exchange("x", timeout=5)
        agent.calls[0].ended = True  # e.g. the agent restarted or cut the stream
        assert stream.exchange("y", timeout=5) == "answer to y"
        assert len(agent.calls) == 2
    finally:
        stream.close()


def test_idle_stream_is_ended_and_reopened_on_the_next_call() -> None:
    agent = FakeAgent()
    stream = make(agent, idle_s=0.05)
    try:
        stream.exchange("x", timeout=5)
        assert agent.calls[0].half_closed.wait(2)  # the agent sees the stream end
        assert not stream.is_open
        assert stream.exchange("y", timeout=5) == "answer to y"
        assert len(agent.calls) == 2
    finally:
        stream.close()


def test_closed_stream_refuses_calls_and_ends_its_call() -> None:
    agent = FakeAgent()
    stream = make(agent)
    stream.exchange("x", timeout=5)
    stream.close()
    assert agent.calls[0].cancelled.is_set()
    with pytest.raises(UnavailableError, match="closed"):
        stream.exchange("y", timeout=5)


def test_request_is_sent_again_when_a_used_stream_was_ended_by_the_agent() -> None:
    answers = iter(["first", StopIteration(), "again"])  # the agent's idle limit hit in between
    agent = FakeAgent(lambda request: next(answers))
    stream = make(agent)
    try:
        assert stream.exchange("a", timeout=5) == "first"
        assert stream.exchange("b", timeout=5) == "again"  # transparently, on a fresh stream
        assert len(agent.calls) == 2
    finally:
        stream.close()
