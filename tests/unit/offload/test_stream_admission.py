"""The agent's cap on open streams: admission, counts (its metrics), rate-limited warning."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgetrust.offload.stream_admission import StreamAdmission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_admits_up_to_the_limit_then_refuses() -> None:
    streams = StreamAdmission(2)
    assert [streams.try_open() for _ in range(3)] == [True, True, False]
    assert streams.open == 2
    streams.close()
    assert streams.try_open()
    assert streams.snapshot() == {
        "max_streams": 2,
        "streams_open": 2,
        "streams_open_peak": 2,
        "streams_opened": 3,
        "streams_refused": 1,
    }


def test_limit_zero_refuses_every_stream() -> None:
    streams = StreamAdmission(0)
    assert not streams.try_open()
    assert streams.snapshot()["streams_refused"] == 1
    assert streams.snapshot()["streams_open"] == 0


def test_closing_gives_the_place_back_and_the_peak_stays() -> None:
    streams = StreamAdmission(3)
    for _ in range(3):
        streams.try_open()
    for _ in range(3):
        streams.close()
    snapshot = streams.snapshot()
    assert (snapshot["streams_open"], snapshot["streams_open_peak"]) == (0, 3)


def test_concurrent_openers_never_exceed_the_limit() -> None:
    streams = StreamAdmission(5)
    start = threading.Barrier(20)

    def open_one(_: int) -> bool:
        start.wait(5)
        return streams.try_open()

    with ThreadPoolExecutor(max_workers=20) as pool:
        admitted = list(pool.map(open_one, range(20)))
    assert admitted.count(True) == 5
    assert streams.snapshot()["streams_refused"] == 15


def test_refusals_are_warned_at_most_once_per_period_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    streams = StreamAdmission(0, warn_every_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="edgetrust.offload.stream_admission"):
        streams.try_open()  # the first refusal is logged at once
        for _ in range(4):
            clock.now += 1.0
            streams.try_open()  # counted, not logged
        clock.now += 60.0
        streams.try_open()  # logged, with the refusals since the last warning
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("refused 1 stream(s): agent.max_streams = 0 streams are open")
    assert messages[1].startswith("refused 5 stream(s) in the last 64 s")
    assert "unary" in messages[1]
    assert streams.snapshot()["streams_refused"] == 6
