"""The agent's cap on open ``ClassifyStream`` calls (``agent.max_streams``) and its counts.

The agent's gRPC server is synchronous: every open stream holds one of its ``agent.max_workers``
handler threads for as long as it stays open, and a client on the persistent-stream transport
keeps its stream open while it classifies. Without a cap, ``max_workers`` devices classifying
continuously would hold every thread and the next device's calls would queue behind them. So
at most ``max_streams`` streams (less than ``max_workers``, checked by
:class:`~edgetrust.offload.config.AgentConfig`) are open at once: a stream beyond the cap is
refused at once with RESOURCE_EXHAUSTED (tag ``stream-limit``,
:class:`~edgetrust.errors.StreamLimitError`), and the client sends that call, and its calls for
a while, unary; unary calls always have ``max_workers - max_streams`` threads left.

Refusals are counted (:meth:`StreamAdmission.snapshot`, part of the agent's metrics) and logged
as a warning at most once per ``warn_every_s`` with the number refused since the last warning,
so a saturated agent says so without a line per refused call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)

#: the refusal warning is logged at most this often (seconds)
WARN_EVERY_S = 60.0


class StreamAdmission:
    """At most ``limit`` streams open at once; counts opened, refused, open now and the peak.

    ``limit`` 0 refuses every stream (the agent then serves unary calls only).
    """

    def __init__(
        self,
        limit: int,
        *,
        warn_every_s: float = WARN_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._warn_every_s = warn_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open = 0
        self._peak = 0
        self._opened = 0
        self._refused = 0
        self._unwarned = 0  # refusals not yet in a warning
        self._warned_at: float | None = None

    def try_open(self) -> bool:
        """Take a place for a new stream; False (counted, maybe logged) when none is left."""
        with self._lock:
            if self._open < self.limit:
                self._open += 1
                self._opened += 1
                self._peak = max(self._peak, self._open)
                return True
            self._refused += 1
            self._unwarned += 1
            now = self._clock()
            if self._warned_at is not None and now - self._warned_at < self._warn_every_s:
                return False
            since = "" if self._warned_at is None else f" in the last {now - self._warned_at:.0f} s"
            count, self._unwarned, self._warned_at = self._unwarned, 0, now
        _log.warning(
            "refused %d stream(s)%s: agent.max_streams = %d streams are open; the clients send "
            "those calls unary (raise agent.max_streams together with agent.max_workers to "
            "serve more streams)",
            count,
            since,
            self.limit,
        )
        return False

    def close(self) -> None:
        """Give back the place of a stream that :meth:`try_open` admitted."""
        with self._lock:
            self._open -= 1

    @property
    def open(self) -> int:
        with self._lock:
            return self._open

    def snapshot(self) -> dict[str, int]:
        """``streams_open`` (gauge), ``streams_open_peak``, ``streams_opened``,
        ``streams_refused`` (counters) and ``max_streams`` (the cap)."""
        with self._lock:
            return {
                "max_streams": self.limit,
                "streams_open": self._open,
                "streams_open_peak": self._peak,
                "streams_opened": self._opened,
                "streams_refused": self._refused,
            }


__all__ = ["WARN_EVERY_S", "StreamAdmission"]
