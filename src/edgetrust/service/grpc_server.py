"""The lifecycle of an edgetrust gRPC server, shared by the verifier and the inference agent.

:class:`GrpcServer` owns a ``grpc.Server`` built the same way for both services:

* options: the service's receive limit, a 1 MiB send limit (responses are small), and
  ``SO_REUSEPORT`` only when asked for (several verifier processes sharing a port); otherwise a
  second server on a taken port fails instead of silently joining it;
* gRPC health checking (the service's own :class:`~grpc_health.v1.health.HealthServicer`) and
  server reflection for the services it names;
* TLS ports: a port that cannot be bound is a :class:`~edgetrust.errors.ConfigError`
  ``cannot listen on HOST:PORT: ...``;
* start / stop / wait and the context manager; stop is graceful (health says NOT_SERVING for
  every service, new calls are refused, running calls get ``grace`` seconds to finish);
* optionally a live Prometheus endpoint (:class:`~edgetrust.service.metrics.MetricsEndpoint`),
  bound when the server is built and served from :meth:`GrpcServer.start` to :meth:`stop`.

Subclasses add their servicers to :attr:`GrpcServer.grpc_server`, call :meth:`serve_health` with
the names of their services, bind with :meth:`bind`, and put their own work around start and stop
in the hooks :meth:`_before_start`, :meth:`_after_start`, :meth:`_before_stop` and
:meth:`_after_stop` (the last one logs the service's ``stopped`` line).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent import futures
from typing import Self

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client.registry import Collector

from edgetrust.errors import ConfigError
from edgetrust.service.metrics import MetricsEndpoint

__all__ = ["MAX_SEND_BYTES", "GrpcServer"]

#: every response of ours is small; a larger one is a bug, not something to send
MAX_SEND_BYTES = 1024 * 1024


class GrpcServer:
    """A gRPC server with health, reflection, TLS ports and a graceful stop (module docs).

    ``metrics``: a bound endpoint served while the server runs (closed by :meth:`stop`).
    """

    #: the grace period of ``with server:`` (seconds)
    exit_grace: float = 1.0

    def __init__(
        self,
        *,
        executor: futures.ThreadPoolExecutor,
        max_receive_bytes: int,
        health_servicer: health.HealthServicer,
        reuse_port: bool = False,
        max_concurrent_rpcs: int | None = None,
    ) -> None:
        self.grpc_server = grpc.server(
            executor,
            options=[
                ("grpc.max_receive_message_length", max_receive_bytes),
                ("grpc.max_send_message_length", MAX_SEND_BYTES),
                ("grpc.so_reuseport", int(reuse_port)),
            ],
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        self._health = health_servicer
        self._services: tuple[str, ...] = ()
        self.host = ""
        self.port = 0
        self.metrics_endpoint: MetricsEndpoint | None = None
        self._started = False

    # -- building ------------------------------------------------------------------------------

    def serve_health(self, services: Sequence[str]) -> None:
        """Register health checking and reflection for ``services`` (plus their own names)."""
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self.grpc_server)
        self._services = (*services, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(self._services, self.grpc_server)

    @property
    def services(self) -> tuple[str, ...]:
        """The service names served (health and reflection included)."""
        return self._services

    def bind(
        self,
        listen: str,
        credentials: grpc.ServerCredentials,
        *,
        main: bool = True,
        zero_fails: bool = False,
    ) -> int:
        """Bind a TLS port; ``main`` makes it :attr:`address`. ``zero_fails``: treat port 0 from
        gRPC (its other way of saying the bind failed) as a failure too."""
        try:
            port = int(self.grpc_server.add_secure_port(listen, credentials))
        except RuntimeError as e:
            raise ConfigError(f"cannot listen on {listen}: {e}") from e
        if port == 0 and zero_fails:
            raise ConfigError(f"cannot listen on {listen}")
        if main:
            self.host, self.port = listen.rsplit(":", 1)[0], port
        return port

    def expose_metrics(self, listen: str | None, registry: Collector) -> None:
        """Bind the live metrics endpoint on ``listen`` (None: none); served while running."""
        if listen is not None:
            self.metrics_endpoint = MetricsEndpoint(listen, registry)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def serving(self) -> bool:
        """Started and not stopping."""
        return self._started

    # -- running -------------------------------------------------------------------------------

    def start(self) -> Self:
        self._before_start()
        self.grpc_server.start()
        self._started = True
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.start()
        self._after_start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, let running ones end within ``grace``."""
        if not self._started:
            if self.metrics_endpoint is not None:
                self.metrics_endpoint.close()
            return
        self._started = False
        self._before_stop()
        self._health.enter_graceful_shutdown()  # every service NOT_SERVING from now on
        self.grpc_server.stop(grace).wait()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        self._after_stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True when it has stopped."""
        return bool(self.grpc_server.wait_for_termination(timeout))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(grace=self.exit_grace)

    def set_serving(self) -> None:
        """Every service SERVING (for servers whose health does not depend on anything else)."""
        for name in ("", *self._services):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    # -- hooks ---------------------------------------------------------------------------------

    def _before_start(self) -> None:
        """Runs before the port opens."""

    def _after_start(self) -> None:
        """Runs once the server serves (log the ``listening`` line here)."""

    def _before_stop(self) -> None:
        """Runs before health goes NOT_SERVING and the server stops."""

    def _after_stop(self) -> None:
        """Runs once every call has ended (log the ``stopped`` line here)."""
