"""The verifier's metrics: counters for its stop line and the same figures live for Prometheus.

:class:`Metrics` keeps plain counters (the ``verifier stopped {...}`` line and the sums over
several processes read :meth:`Metrics.snapshot`; its keys are part of that contract) and mirrors
them into a Prometheus registry of its own (:attr:`Metrics.registry`), which
``[metrics] listen`` / ``--metrics`` serves (:mod:`edgetrust.service.metrics`):

=================================================  ================================================
``edgetrust_verifier_challenges_total``             challenges issued
``edgetrust_verifier_challenge_failures_total``     challenges refused (oversized hint, store down)
``edgetrust_verifier_attestations_total{result}``   ``affirmed``, ``refused``, ``malformed``,
                                                    ``error``
``edgetrust_verifier_certificates_issued_total``    operational certificates issued
``edgetrust_verifier_attest_duration_seconds``      histogram of attestations the core decided
``edgetrust_verifier_feed_watchers_total``          revocation feed subscriptions opened
``edgetrust_verifier_registry_write_batches_total`` group-committed registry write transactions
``edgetrust_verifier_registry_writes_total``        the writes they carried
=================================================  ================================================

Only counters and histograms: they add up across the processes of ``verifier serve --processes``
(``prometheus_client`` multiprocess mode). The registry's figures come from sources read when
counters move (:meth:`Metrics.add_source`), so they are exact as of the last call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ATTEST_RESULTS", "Metrics"]

_PREFIX = "edgetrust_verifier"
#: the ``result`` label values of ``edgetrust_verifier_attestations_total``
ATTEST_RESULTS = ("affirmed", "refused", "malformed", "error")
#: the sources' keys (the registry's stats) -> Prometheus counter name and help
_SOURCE_COUNTERS: Mapping[str, tuple[str, str]] = {
    "registry_batches": ("registry_write_batches", "Registry write transactions (group commit)."),
    "registry_writes": ("registry_writes", "Registry writes carried by those transactions."),
}


class Metrics:
    """Monotonic counters, safe to bump from the server's worker threads (module docs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._attest_seconds = 0.0
        #: more counters read at snapshot time (e.g. the registry's write batches)
        self._sources: list[Callable[[], Mapping[str, int]]] = []
        self._source_seen: dict[str, int] = {}
        self.registry = CollectorRegistry()
        self._challenges = Counter(
            f"{_PREFIX}_challenges", "Challenges issued.", registry=self.registry
        )
        self._challenge_failures = Counter(
            f"{_PREFIX}_challenge_failures", "Challenges refused.", registry=self.registry
        )
        attestations = Counter(
            f"{_PREFIX}_attestations",
            "Attestations by result.",
            ["result"],
            registry=self.registry,
        )
        self._attestations = {result: attestations.labels(result) for result in ATTEST_RESULTS}
        self._certificates = Counter(
            f"{_PREFIX}_certificates_issued",
            "Operational certificates issued.",
            registry=self.registry,
        )
        self._feed_watchers = Counter(
            f"{_PREFIX}_feed_watchers", "Revocation feed subscriptions.", registry=self.registry
        )
        self._attest_duration = Histogram(
            f"{_PREFIX}_attest_duration_seconds",
            "Time to decide an attestation (decoded request to response).",
            registry=self.registry,
        )
        self._source_counters = {
            key: Counter(f"{_PREFIX}_{name}", text, registry=self.registry)
            for key, (name, text) in _SOURCE_COUNTERS.items()
        }
        self._live: dict[str, Callable[[int], None]] = {
            "challenges": self._challenges.inc,
            "challenge_failed": self._challenge_failures.inc,
            "certificates_issued": self._certificates.inc,
            "feed_watchers": self._feed_watchers.inc,
            **{f"attest_{r}": counter.inc for r, counter in self._attestations.items()},
        }

    def add_source(self, source: Callable[[], Mapping[str, int]]) -> None:
        with self._lock:
            self._sources.append(source)

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + by
            live = self._live.get(name)
            if live is not None:
                live(by)
            if self._sources:
                self._read_sources()

    def observe_attest(self, seconds: float) -> None:
        with self._lock:
            self._attest_seconds += seconds
            self._attest_duration.observe(seconds)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            data: dict[str, float] = dict(sorted(self._counts.items()))
            data["attest_seconds_total"] = round(self._attest_seconds, 6)
            data.update(self._read_sources())
            return data

    def _read_sources(self) -> dict[str, int]:
        """The sources' figures now; their growth goes to the live counters (lock held)."""
        values: dict[str, int] = {}
        for source in self._sources:
            values.update(source())
        for key, value in values.items():
            counter = self._source_counters.get(key)
            grown = value - self._source_seen.get(key, 0)
            if counter is not None and grown > 0:
                counter.inc(grown)
                self._source_seen[key] = value
        return values
