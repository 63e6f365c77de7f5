"""Live metrics in the Prometheus text format over HTTP (``GET /metrics``).

Every server keeps its metrics in a registry of its own (``prometheus_client.CollectorRegistry``,
never the process-global one: tests run many servers in one process). :class:`MetricsEndpoint`
serves one registry on ``HOST:PORT`` (``[v6addr]:PORT`` for IPv6; port 0 picks a free port,
:attr:`MetricsEndpoint.address` says which). The socket is bound when the endpoint is built, so a
bad or taken address is a :class:`~edgetrust.errors.ConfigError` naming it before anything
serves; requests are answered from :meth:`MetricsEndpoint.start` to :meth:`MetricsEndpoint.close`.

Several processes (``verifier serve --processes N``) use ``prometheus_client``'s multiprocess
mode (:class:`MultiprocessMetrics`): the parent makes a private directory, each child is started
with ``PROMETHEUS_MULTIPROC_DIR`` naming it (the variable must be set before the child imports
``prometheus_client``), counters and histograms write their values to files there, and the
parent serves their sum. The directory is removed when the parent closes it.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from edgetrust.errors import ConfigError
from edgetrust.service.configuration import parse_host_port

__all__ = ["MULTIPROC_ENV", "MetricsEndpoint", "MultiprocessMetrics", "split_host_port"]

#: the variable that switches ``prometheus_client`` to its multiprocess mode (read at import)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def split_host_port(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); ConfigError naming ``listen``
    (:func:`~edgetrust.service.configuration.parse_host_port`)."""
    address = parse_host_port(listen, "metrics address", message="{where} {text}: {problem}")
    return address.host, address.port


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape on stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request (a slow scraper does not hold up the next)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a scraper that hung up: nothing to report


class MetricsEndpoint:
    """``GET /metrics`` for ``registry`` on ``listen`` (see the module documentation)."""

    def __init__(self, listen: str, registry: Collector) -> None:
        host, port = split_host_port(listen)
        try:
            family = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0][0]
            server_class = type("_Server", (_ThreadingServer,), {"address_family": family})
            self._httpd: WSGIServer = make_server(
                host, port, make_wsgi_app(registry), server_class, handler_class=_QuietHandler
            )
        except OSError as e:
            raise ConfigError(
                f"cannot serve metrics on {listen}: {e.strerror or e}",
                hint="set [metrics] listen (or --metrics) to a free HOST:PORT",
            ) from e
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def start(self) -> MetricsEndpoint:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.2,), name="metrics", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering and release the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._httpd.server_close()


class MultiprocessMetrics:
    """A private ``PROMETHEUS_MULTIPROC_DIR`` for a group of processes and their summed metrics.

    Start the children inside :meth:`child_environment`; serve :attr:`registry`; :meth:`close`
    removes the directory.
    """

    def __init__(self, *, prefix: str = "edgetrust-metrics-") -> None:
        self.directory = tempfile.mkdtemp(prefix=prefix)
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=self.directory)  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()

    @contextmanager
    def child_environment(self) -> Iterator[None]:
        """``PROMETHEUS_MULTIPROC_DIR`` set in this process's environment (what spawned children
        inherit), restored afterwards."""
        with self._lock:
            previous = os.environ.get(MULTIPROC_ENV)
            os.environ[MULTIPROC_ENV] = self.directory
            try:
                yield
            finally:
                if previous is None:
                    del os.environ[MULTIPROC_ENV]
                else:
                    os.environ[MULTIPROC_ENV] = previous

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
