"""The agent's stream inbox: read-ahead bounded by the window, wake-up by a revocation, the end of
the requests (half-close or a failed call), and the reader stopping when the handler is done."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc

from edgetrust.offload.stream_inbox import StreamInbox


class Requests:
    """A request iterator fed by the test; counts what the reader pulled."""

    def __init__(self) -> None:
        self.feed: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.pulled = 0

    def __iter__(self) -> Iterator[object]:
        return self

    def __next__(self) -> object:
        item = self.feed.get()
        if item is StopIteration:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        self.pulled += 1
        return item


def start(inbox: StreamInbox, requests: Requests) -> threading.Thread:
    reader = threading.Thread(target=inbox.read, args=(requests,), daemon=True)
    reader.start()
    return reader


def test_requests_then_end_in_order() -> None:
    inbox, requests = StreamInbox(4), Requests()
    reader = start(inbox, requests)
    for item in ("a", "b", StopIteration):
        requests.feed.put(item)
    assert [inbox.take(), inbox.take(), inbox.take()] == ["a", "b", StreamInbox.END]
    reader.join(2)
    assert not reader.is_alive()


def test_a_failed_call_ends_the_requests() -> None:
    inbox, requests = StreamInbox(4), Requests()
    reader = start(inbox, requests)
    requests.feed.put(grpc.RpcError())
    assert inbox.take() is StreamInbox.END
    reader.join(2)
    assert not reader.is_alive()


def test_read_ahead_is_bounded_by_the_window() -> None:
    inbox, requests = StreamInbox(2), Requests()
    start(inbox, requests)
    for i in range(5):
        requests.feed.put(i)
    threading.Event().wait(0.1)
    assert requests.pulled == 2  # the reader waits for the handler
    assert inbox.take() == 0
    assert inbox.take() == 1
    assert inbox.take() == 2  # taking freed the window
    inbox.finish()


def test_a_revocation_wakes_the_waiting_handler() -> None:
    inbox, requests = StreamInbox(2), Requests()
    start(inbox, requests)
    threading.Timer(0.05, inbox.wake).start()
    assert inbox.take() is StreamInbox.WAKE  # no request came: woken all the same
    inbox.finish()


def test_take_gives_none_after_its_timeout() -> None:
    inbox, requests = StreamInbox(2), Requests()
    start(inbox, requests)
    assert inbox.take(timeout=0.02) is None  # the handler ends an idle stream
    inbox.finish()


def test_finish_stops_a_reader_waiting_for_the_window() -> None:
    inbox, requests = StreamInbox(1), Requests()
    reader = start(inbox, requests)
    requests.feed.put("a")
    requests.feed.put("b")
    threading.Event().wait(0.05)
    inbox.finish()
    reader.join(2)
    assert not reader.is_alive()
    assert requests.pulled == 1
