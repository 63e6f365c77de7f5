"""The remote backend's persistent-stream transport (``transport = "stream"``).

One ``ClassifyStream`` call reused by successive classifications, a classification being one
request message and its response, with the semantics of a unary call (per-call timeout, errors,
no stale answers). See :class:`PersistentStream`; the remote backend
(:class:`~edgetrust.offload.client.RemoteBackend`) decides when a call takes it.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

from edgetrust.errors import DeadlineExceededError, UnavailableError
from edgetrust.offload.rpc_status import error_from_rpc

_CLOSE = object()


class _StaleStreamError(UnavailableError):
    """A stream that had answered before was found ended by the agent (never leaves the client)."""


#: An idle persistent stream is ended after this many seconds: on the agent every open stream
#: holds a handler thread (``agent.max_workers``), so a device that stopped calling gives it back.
STREAM_IDLE_S = 3.0


class PersistentStream:
    """One ``ClassifyStream`` reused by successive calls: a call = one request and its response.

    The agent authenticates the caller once per stream instead of once per call, and HTTP/2 sets
    up no new stream per image. Semantics are those of a unary call:

    * **timeout** per call: a watcher thread cancels the stream when a call's answer is late; the
      call raises :class:`DeadlineExceededError` and the next call opens a new stream (a late
      answer can never be taken for the next call's);
    * **errors** are the agent's statuses translated by :func:`error_from_rpc`; any error ends the
      stream (the agent ends it too), the next call opens a new one. A stream that the agent ended
      while it was idle (revocation, restart) is replaced before use, so a revoked device's next
      call is refused on a fresh stream with the agent's current verdict;
    * **one call at a time**: callers hold :attr:`lock` around :meth:`exchange` (the backend
      sends concurrent calls unary instead of queueing them here);
    * **idle**: the watcher ends the stream after ``idle_s`` to ``2 * idle_s`` without calls.
    """

    def __init__(self, open_call: Any, *, agent: str, idle_s: float = STREAM_IDLE_S) -> None:
        self.lock = threading.Lock()
        self._open_call = open_call
        self._agent = agent
        self._idle_s = idle_s
        self._cond = threading.Condition(threading.Lock())
        self._call: Any = None
        self._outbox: queue.SimpleQueue[Any] | None = None
        self._seq = 0
        self._inflight: int | None = None  # the call waiting for its answer
        self._deadline = 0.0
        self._expired: int | None = None  # the call whose answer came too late
        self._last_used = 0.0
        self._answers = 0  # answers received on the current stream
        self._wake_at = math.inf  # when the watcher wakes up next
        self._watcher: threading.Thread | None = None
        self._closed = False

    @property
    def is_open(self) -> bool:
        with self._cond:
            return self._call is not None

    def exchange(self, request: Any, *, timeout: float) -> Any:
        """Send ``request``, return its response (hold :attr:`lock`); our errors only.

        ``timeout`` (seconds) bounds this call alone, like a unary call's ``timeout``. When a
        stream that has answered before turns out to have been ended by the agent (its idle
        limit, ``agent.stream_idle_s``, just before the request went out), the request is sent
        again on a fresh stream within the same deadline: classification has no side effects.
        """
        deadline = time.monotonic() + timeout
        try:
            return self._send(request, deadline, timeout)
        except _StaleStreamError:
            return self._send(request, deadline, timeout)

    def _send(self, request: Any, deadline: float, timeout: float) -> Any:
        with self._cond:
            if self._closed:
                raise UnavailableError(f"agent {self._agent}: the client is closed")
            if self._call is not None and self._call.done():
                self._end_locked()  # ended by the agent while idle: use a fresh one
            if self._call is None:
                self._open_locked()
            call, outbox, reused = self._call, self._outbox, self._answers > 0
            self._seq += 1
            seq = self._inflight = self._seq
            self._deadline = deadline
            if self._deadline < self._wake_at:
                self._cond.notify()
        if outbox is None:  # pragma: no cover - opened above
            raise UnavailableError(f"agent {self._agent}: no stream")
        outbox.put(request)
        try:
            response = next(call)
        except grpc.RpcError as e:
            if self._finish(seq, call, failed=True):
                raise DeadlineExceededError(
                    f"agent {self._agent}: no answer within {timeout:g} s"
                ) from e
            raise error_from_rpc(e, agent=self._agent) from e
        except StopIteration as e:
            self._finish(seq, call, failed=True)
            if reused:
                raise _StaleStreamError(f"agent {self._agent}: the agent ended the stream") from e
            raise UnavailableError(f"agent {self._agent}: the agent ended the stream") from e
        self._finish(seq, call, failed=False)
        return response

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._end_locked()
            self._cond.notify()
            watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(1.0)

    def _finish(self, seq: int, call: Any, *, failed: bool) -> bool:
        """End the exchange ``seq``; True when the watcher found it late."""
        with self._cond:
            if self._inflight == seq:
                self._inflight = None
            self._last_used = time.monotonic()
            if not failed and self._call is call:
                self._answers += 1
            expired = self._expired == seq
            if failed and self._call is call:
                self._end_locked()
            return expired

    def _open_locked(self) -> None:
        outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def requests() -> Iterator[Any]:
            while (item := outbox.get()) is not _CLOSE:
                yield item

        self._call = self._open_call(requests())
        self._outbox = outbox
        self._answers = 0
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name=f"stream-watch {self._agent}", daemon=True
            )
            self._watcher.start()

    def _end_locked(self) -> None:
        call, outbox = self._call, self._outbox
        self._call = self._outbox = None
        if outbox is not None:
            outbox.put(_CLOSE)  # half-close: gRPC's request thread returns
        if call is not None:
            call.cancel()

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._inflight is not None:
                    if now >= self._deadline:
                        self._expired, self._inflight = self._inflight, None
                        self._end_locked()  # the waiting caller sees the call end
                        continue
                    # also look again within idle_s: the call may end long before its deadline
                    self._wake_at = min(self._deadline, now + self._idle_s)
                elif self._call is not None:
                    if now >= self._last_used + self._idle_s:
                        self._end_locked()
                        continue
                    self._wake_at = self._last_used + self._idle_s
                else:
                    self._wake_at = math.inf
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)
                self._wake_at = math.inf


__all__ = ["STREAM_IDLE_S", "PersistentStream"]
