"""The inference agent's live metrics (Prometheus text format, ``[metrics] listen``).

One registry per agent (:attr:`AgentMetrics.registry`), served by
:mod:`edgetrust.service.metrics`:

================================================  ================================================
``edgetrust_agent_requests_total{model,code}``    classifications (unary calls and stream
                                                  messages) by served model and gRPC status code
                                                  (``model="-"``: a model the agent does not serve)
``edgetrust_agent_inference_seconds{model}``      histogram: model run time (the batch's)
``edgetrust_agent_queue_seconds{model}``          histogram: time waiting for a batch to start
``edgetrust_agent_batch_size{model}``             histogram: requests per model run
``edgetrust_agent_streams_open``                  gauge: ClassifyStream calls open now
``edgetrust_agent_streams_max``                   gauge: the cap (``agent.max_streams``)
``edgetrust_agent_streams_opened_total``          streams admitted
``edgetrust_agent_streams_refused_total``         streams refused at the cap (sent unary)
``edgetrust_agent_calls_active``                  gauge: unary calls and streams in progress
``edgetrust_agent_revocation_feed_age_seconds``   gauge: since the feed's last update (event or
                                                  heartbeat); before the first one, since the
                                                  follower started. Absent without a feed
``edgetrust_agent_revoked_identities``            gauge: devices and certificates revoked
================================================  ================================================

The gauges and stream counts are read from their owners at scrape time (:meth:`AgentMetrics.watch`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edgetrust.offload.feed import RevocationEvent

__all__ = ["UNKNOWN_MODEL", "AgentMetrics", "AgentState"]

_PREFIX = "edgetrust_agent"
#: the ``model`` label of requests for a model the agent does not serve (bounded label values)
UNKNOWN_MODEL = "-"
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: what :meth:`AgentMetrics.watch` reads at scrape time: name -> value (see the module table)
AgentState = Callable[[], Mapping[str, float | None]]

_GAUGES = {
    "streams_open": "ClassifyStream calls open now.",
    "max_streams": "Streams open at once at most (agent.max_streams).",
    "calls_active": "Unary calls and streams in progress.",
    "revocation_feed_age_seconds": "Seconds since the revocation feed's last update.",
    "revoked_identities": "Devices and certificates revoked.",
}
_COUNTERS = {
    "streams_opened": "Streams admitted.",
    "streams_refused": "Streams refused at agent.max_streams.",
}
#: state key -> metric name, where they differ
_RENAMED = {"max_streams": "streams_max"}


class AgentMetrics:
    """The agent's instruments (see the module documentation); thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            f"{_PREFIX}_requests",
            "Classifications by model and gRPC status code.",
            ["model", "code"],
            registry=self.registry,
        )
        self._inference = self._histogram("inference_seconds", "Model run time.", _TIME_BUCKETS)
        self._queue = self._histogram(
            "queue_seconds", "Time queued before the model run started.", _TIME_BUCKETS
        )
        self._batch = self._histogram("batch_size", "Requests per model run.", _BATCH_BUCKETS)
        self._lock = threading.Lock()
        self._revoked: set[tuple[str, str]] = set()

    def _histogram(self, name: str, text: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(
            f"{_PREFIX}_{name}", text, ["model"], buckets=buckets, registry=self.registry
        )

    def request(self, model: str, code: grpc.StatusCode) -> None:
        self._requests.labels(model, code.name).inc()

    def timing(self, model: str, *, queue_s: float, run_s: float) -> None:
        self._queue.labels(model).observe(queue_s)
        self._inference.labels(model).observe(run_s)

    def batch(self, model: str, size: int) -> None:
        self._batch.labels(model).observe(size)

    def revoked(self, event: RevocationEvent) -> None:
        """A revocation applied (subscribe this to the revocation set)."""
        with self._lock:
            self._revoked.add((event.kind.value, event.ueid_hex or event.serial_hex))

    @property
    def revoked_identities(self) -> int:
        with self._lock:
            return len(self._revoked)

    def watch(self, state: AgentState) -> None:
        """Export ``state()`` (gauges and stream counters, read at scrape time)."""
        self.registry.register(_StateCollector(state))


class _StateCollector(Collector):
    def __init__(self, state: AgentState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        for key, value in self._state().items():
            if value is None:
                continue
            name = f"{_PREFIX}_{_RENAMED.get(key, key)}"
            if key in _COUNTERS:
                yield CounterMetricFamily(name, _COUNTERS[key], value=value)
            elif key in _GAUGES:
                yield GaugeMetricFamily(name, _GAUGES[key], value=value)

    def describe(self) -> Iterator[Metric]:
        return iter(())
