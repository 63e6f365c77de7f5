"""A verifier from its configuration, in one process or in several sharing its ports.

:func:`open_verifier` builds and starts the verifier that ``verifier.toml`` describes (keys,
registry, settings) in this process. :class:`VerifierProcesses` runs ``processes`` of them: one
Python process holds one GIL, and a verifier's handlers are Python, so one process uses about one
core however many worker threads it has. Several processes each run the whole gRPC server on the
same ports with ``SO_REUSEPORT``: the kernel spreads incoming connections over them (a device's
channel stays with one process; Challenge and Attest may still land on different processes, which
is fine because nonces live in the registry).

How the group runs (the parent is the ``edgetrust verifier serve`` process):

* the parent checks the keys and opens (creates) the registry once, then picks the ports: a fixed
  port must be free (a probe bind *without* ``SO_REUSEPORT``, so that the children can never join
  a group some other server is already listening in), port 0 becomes a free port chosen the same
  way. It holds each port with a bound, non-listening ``SO_REUSEPORT`` socket while the children
  start (a bound socket that does not listen receives no connections);
* the children are started with the ``spawn`` context (a fresh interpreter each: gRPC does not
  survive ``fork``) and report ``ready`` with their bound addresses over a pipe; the parent
  announces the verifier only once all of them are ready, and fails (stopping the others) with
  the child's own message if one cannot start;
* stop: the parent sends SIGTERM to every child; each stops its server gracefully within the
  grace period (health NOT_SERVING, running calls finish), closes its registry and sends its
  metrics back; the parent adds them up. A child also stops by itself when the parent dies (its
  end of a pipe from the parent reaches EOF), so no orphan keeps serving;
* a child that exits on its own (crash, OOM kill, SIGKILL) makes :meth:`VerifierProcesses.supervise`
  raise :class:`~edgetrust.errors.ServiceError` naming it; the caller stops the others and exits
  non-zero. Nothing is restarted here on purpose: a verifier that lost a process is reported to
  the service manager (systemd, Kubernetes), which restarts the whole verifier, instead of
  running degraded unnoticed or crash-looping one process behind a healthy-looking parent.

The registry is shared through the database: SQLite in WAL mode (each write transaction holds the
database's write lock from ``BEGIN IMMEDIATE`` to its commit, so the audit chain head read inside
it, the nonce consumption and the issuance are serialised across processes; writers of different
processes queue on a lock file, see :mod:`edgetrust.onboarding.database`), or PostgreSQL (row and
advisory locks, as for replicas on several hosts).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any

from edgetrust.attest.appraisal import AppraisalPolicy
from edgetrust.errors import ConfigError, Error, ServiceError
from edgetrust.onboarding.attestation import AttestationSettings
from edgetrust.onboarding.config import ListenAddress, VerifierConfig
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.verifier import VerifierServer, VerifierSettings, build_verifier_server
from edgetrust.onboarding.workspace import load_keys
from edgetrust.service.metrics import MetricsEndpoint, MultiprocessMetrics

__all__ = ["OpenVerifier", "VerifierProcesses", "open_verifier", "verifier_settings"]

_log = logging.getLogger("edgetrust.verifier")

#: how long a child may take to start (import, keys, registry, bind)
START_TIMEOUT_S = 60.0
#: how often the parent looks at its children
POLL_S = 0.25


def verifier_settings(config: VerifierConfig, *, reuse_port: bool = False) -> VerifierSettings:
    """The :class:`VerifierSettings` that ``config`` describes."""
    return VerifierSettings(
        listen=str(config.listen),
        feed_listen=str(config.feed_listen) if config.feed_listen else None,
        trust_domain=config.trust_domain,
        certificate_lifetime=config.certificate_lifetime,
        workers=config.workers,
        attestation=AttestationSettings(
            nonce_ttl=config.nonce_ttl,
            endorsement_refresh=config.endorsement_refresh,
            appraisal=AppraisalPolicy(),
            ear_format=config.ear_format,
        ),
        reuse_port=reuse_port,
        metrics_listen=str(config.metrics_listen) if config.metrics_listen else None,
    )


@dataclass(frozen=True, slots=True)
class OpenVerifier:
    """A started verifier and the registry it owns (close it after stopping the server)."""

    server: VerifierServer
    store: SqlRegistryStore

    def stop(self, grace: float) -> dict[str, float]:
        """Stop gracefully, close the registry; the server's metrics."""
        try:
            self.server.stop(grace)
        finally:
            self.store.close()
        return self.server.metrics.snapshot()


def open_verifier(config: VerifierConfig, *, reuse_port: bool = False) -> OpenVerifier:
    """Load the keys, open (create) the registry, build and start the verifier of ``config``."""
    keys = load_keys(config)
    store = SqlRegistryStore(
        config.database_url, create=True, sqlite_synchronous=config.sqlite_synchronous
    )
    try:
        settings = verifier_settings(config, reuse_port=reuse_port)
        server = build_verifier_server(keys=keys, store=store, settings=settings).start()
    except BaseException:
        store.close()
        raise
    return OpenVerifier(server=server, store=store)


# ------------------------------------------------------------------------------------------------
# Several processes
# ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Child:
    index: int
    process: Any  # multiprocessing SpawnProcess
    messages: Connection  # child -> parent
    lifeline: Connection  # parent -> child; its EOF tells the child that the parent is gone
    ready: tuple[str, str | None] | None = None
    metrics: dict[str, float] | None = None
    stopping: bool = False


class VerifierProcesses:
    """``processes`` verifier processes on the ports of ``config`` (see the module docs)."""

    def __init__(
        self, config: VerifierConfig, processes: int, *, grace: float, log_level: int
    ) -> None:
        if processes < 2:
            raise ConfigError("VerifierProcesses needs at least 2 processes (1: open_verifier)")
        self._config = config
        self._processes = processes
        self._grace = grace
        self._log_level = log_level
        self._children: list[_Child] = []
        self._reserved: list[socket.socket] = []
        self.address = ""
        self.feed_address: str | None = None
        self._metrics: MultiprocessMetrics | None = None
        #: the children's metrics added up, live (``config.metrics_listen``); None: off
        self.metrics_endpoint: MetricsEndpoint | None = None

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> VerifierProcesses:
        """Start every child and return once all are serving; raise (nothing left running)."""
        config = self._config
        load_keys(config)  # fail here, once, with the usual message
        SqlRegistryStore(
            config.database_url, create=True, sqlite_synchronous=config.sqlite_synchronous
        ).close()
        try:
            listen = self._reserve(config.listen, "listen")
            feed = None if config.feed_listen is None else self._reserve(config.feed_listen, "feed")
            child_config = replace(config, listen=listen, feed_listen=feed, metrics_listen=None)
            if config.metrics_listen is not None:
                self._metrics = MultiprocessMetrics(prefix="edgetrust-verifier-metrics-")
                self.metrics_endpoint = MetricsEndpoint(
                    str(config.metrics_listen), self._metrics.registry
                )
            with self._child_environment():
                self._spawn(child_config)
            self._await_ready()
        except BaseException:
            self.stop()
            raise
        finally:
            for held in self._reserved:
                held.close()
            self._reserved.clear()
        addresses = {child.ready for child in self._children}
        if len(addresses) != 1:  # pragma: no cover - same ports by construction
            self.stop()
            raise ServiceError(f"verifier processes bound different addresses: {addresses}")
        self.address, self.feed_address = addresses.pop() or ("", None)
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.start()
        return self

    def _child_environment(self) -> contextlib.AbstractContextManager[None]:
        """With metrics: the children write theirs to the shared directory (multiprocess mode)."""
        if self._metrics is None:
            return contextlib.nullcontext()
        return self._metrics.child_environment()

    def _spawn(self, child_config: VerifierConfig) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that has gRPC
        for index in range(self._processes):
            messages, child_messages = ctx.Pipe(duplex=False)
            child_lifeline, lifeline = ctx.Pipe(duplex=False)
            process = ctx.Process(
                target=_child_main,
                args=(
                    child_config,
                    (self._grace, self._log_level),
                    child_messages,
                    child_lifeline,
                ),
                name=f"edgetrust-verifier-{index + 1}",
                daemon=False,
            )
            process.start()
            child_messages.close()
            child_lifeline.close()
            self._children.append(_Child(index, process, messages, lifeline))

    def _reserve(self, listen: ListenAddress, what: str) -> ListenAddress:
        """A free port for ``listen`` (checked without SO_REUSEPORT), held until the children
        have bound it."""
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            with socket.socket(family, kind, proto) as probe:  # in use by anyone: refused here
                probe.bind(address)
                port = int(probe.getsockname()[1])
            held = socket.socket(family, kind, proto)
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            held.bind((address[0], port, *address[2:]))
        except OSError as e:
            raise ConfigError(f"cannot listen on {listen} ({what}): {e.strerror or e}") from e
        self._reserved.append(held)
        return ListenAddress(host=listen.host, port=port)

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = list(self._children)
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceError(
                    f"verifier process(es) {', '.join(str(c.index + 1) for c in waiting)} did "
                    f"not start within {START_TIMEOUT_S:.0f} s"
                )
            ready = wait(
                [c.messages for c in waiting] + [c.process.sentinel for c in waiting], left
            )
            for child in list(waiting):
                if child.messages in ready:
                    message = _receive(child)
                    if message is not None and message[0] == "ready":
                        child.ready = (message[1], message[2])
                        waiting.remove(child)
                        continue
                    if message is not None and message[0] == "error":
                        raise _child_error(message, self._describe(child))
                if child.process.sentinel in ready and child.ready is None:
                    child.process.join(timeout=5)
                    raise ServiceError(
                        f"{self._describe(child)} exited while starting "
                        f"({_exit_reason(child.process.exitcode)})"
                    )

    # -- run ------------------------------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children]

    def supervise(self, stop: threading.Event) -> None:
        """Return once ``stop`` is set; raise :class:`ServiceError` as soon as a child exits
        on its own (the caller then stops the others). A child that ends after ``stop`` was set
        (SIGINT from a terminal reaches every process of the group at once) is not a death."""
        sentinels = {c.process.sentinel: c for c in self._children}
        while not stop.is_set():
            for sentinel in wait(list(sentinels), POLL_S):
                if stop.is_set():
                    return
                child = sentinels[sentinel]
                child.process.join(timeout=5)
                raise ServiceError(
                    f"{self._describe(child)} died ({_exit_reason(child.process.exitcode)}); "
                    "the verifier stops",
                    hint="see its log above; the service manager should restart the verifier",
                )

    # -- stop -----------------------------------------------------------------------------------

    def stop(self) -> dict[str, float]:
        """SIGTERM every child (each stops within the grace period), wait for their metrics,
        add them up; a child still running well after the grace period is killed."""
        for child in self._children:
            if child.process.is_alive() and not child.stopping:
                child.stopping = True
                child.process.terminate()
        deadline = time.monotonic() + self._grace + 15.0
        for child in self._children:
            while child.metrics is None and child.process.is_alive():
                left = deadline - time.monotonic()
                if left <= 0 or not wait([child.messages, child.process.sentinel], left):
                    break
                message = _receive(child)
                if message is not None and message[0] == "stopped":
                    child.metrics = message[1]
            if child.metrics is None:  # it may have sent them just before exiting
                while child.messages.poll(0):
                    message = _receive(child)
                    if message is None:
                        break
                    if message[0] == "stopped":
                        child.metrics = message[1]
            child.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if child.process.is_alive():
                child.process.kill()
                child.process.join(timeout=5)
            child.messages.close()
            child.lifeline.close()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        if self._metrics is not None:
            self._metrics.close()
        return _aggregate(
            [c.metrics for c in self._children if c.metrics is not None], len(self._children)
        )

    def _describe(self, child: _Child) -> str:
        return f"verifier process {child.index + 1} of {self._processes} (pid {child.process.pid})"


def _receive(child: _Child) -> tuple[Any, ...] | None:
    try:
        message: tuple[Any, ...] = child.messages.recv()
    except (EOFError, OSError):
        return None
    return message


def _child_error(message: tuple[Any, ...], who: str) -> Error:
    kind, text, hint = message[1], message[2], message[3]
    error_type = ConfigError if kind == "config" else ServiceError
    return error_type(f"{who}: {text}", hint=hint or None)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _aggregate(snapshots: list[dict[str, float]], processes: int) -> dict[str, float]:
    """The children's metrics added up, plus how many processes there were and served."""
    total: dict[str, float] = {}
    for snapshot in snapshots:
        for key, value in snapshot.items():
            total[key] = total.get(key, 0) + value
    if "attest_seconds_total" in total:
        total["attest_seconds_total"] = round(total["attest_seconds_total"], 6)
    total["processes"] = processes
    total["processes_reporting"] = len(snapshots)
    total["processes_served"] = sum(1 for s in snapshots if s.get("challenges", 0) > 0)
    return total


# ------------------------------------------------------------------------------------------------
# In a child
# ------------------------------------------------------------------------------------------------


def _child_main(
    config: VerifierConfig,
    options: tuple[float, int],
    messages: Connection,
    lifeline: Connection,
) -> None:
    """One verifier process: serve until SIGTERM/SIGINT or the parent's end of ``lifeline``
    closes; report ``ready`` / ``error`` / ``stopped`` on ``messages``. ``options``: (grace
    period, log level)."""
    grace, log_level = options
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.basicConfig(
        level=log_level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
    )
    try:
        running = open_verifier(config, reuse_port=True)
    except ConfigError as e:
        messages.send(("error", "config", e.message, e.hint))
        raise SystemExit(2) from None
    except Error as e:
        messages.send(("error", "service", e.message, e.hint))
        raise SystemExit(3) from None
    except Exception as e:
        messages.send(("error", "service", f"{type(e).__name__}: {e}", ""))
        raise
    messages.send(("ready", running.server.address, running.server.feed_address))

    def watch_parent() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv()  # the parent never sends: this returns when its end closes
        if not stop.is_set():
            _log.warning("the parent verifier process is gone; stopping")
            stop.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    while not stop.wait(POLL_S):
        pass
    metrics = running.stop(grace)
    with contextlib.suppress(OSError):
        messages.send(("stopped", metrics))


def metrics_line(metrics: Mapping[str, float]) -> str:
    """How ``verifier serve`` reports its metrics when it stops (one line)."""
    return f"verifier stopped {dict(metrics)}"
