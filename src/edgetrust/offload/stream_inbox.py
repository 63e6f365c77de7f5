"""The read-ahead inbox of one ``ClassifyStream``: what lets a revocation end an idle stream.

The agent's stream handler (:class:`~edgetrust.offload.inference_service.InferenceServicer`)
blocks on a :class:`StreamInbox` rather than on gRPC's request iterator, which only the call
ending can wake: a pooled reader thread moves requests into the inbox, and a revocation of the
caller (the call guard's cut, :class:`~edgetrust.offload.authz.CallGuard`) wakes it too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc


class StreamInbox:
    """The requests of one ``ClassifyStream``, read ahead by a pooled reader thread.

    gRPC's request iterator can only be woken by the call ending, so a handler blocked on it could
    not notice a revocation of an idle stream. The handler therefore blocks on this inbox, which a
    revocation wakes (:meth:`wake`, registered with the call's guard) as well as a request or the
    end of the requests. No polling: an idle stream costs no CPU. At most ``window`` requests are
    read ahead of the handler (back-pressure reaches the client through HTTP/2 flow control).
    """

    END = object()  # the requests ended (half-close, cancellation, deadline)
    WAKE = object()  # woken by a revocation

    __slots__ = ("_done", "_items", "_slots")

    def __init__(self, window: int) -> None:
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.Semaphore(window)
        self._done = False

    def read(self, request_iterator: Iterator[Any]) -> None:
        """The reader thread: requests into the inbox until the requests or the handler end."""
        try:
            while True:
                self._slots.acquire()  # the window; finish() releases one to end the wait
                if self._done:
                    return
                self._items.put(next(request_iterator))
        except StopIteration:
            pass
        except grpc.RpcError:
            pass  # the call ended (cancelled, deadline, or the handler aborted it)
        self._items.put(self.END)

    def take(self, timeout: float | None = None) -> Any:
        """The next request, :attr:`END` or :attr:`WAKE`; None after ``timeout`` seconds."""
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is not self.END and item is not self.WAKE:
            self._slots.release()
        return item

    def wake(self) -> None:
        self._items.put(self.WAKE)

    def finish(self) -> None:
        """The handler is done: the reader stops at its next request."""
        self._done = True
        self._slots.release()
