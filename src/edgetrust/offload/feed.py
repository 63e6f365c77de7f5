"""The revocation feed an agent follows (proto/edgetrust/v1/revocation.proto).

offload must not import onboarding, so the registry's revocations reach the agent through a small
contract: a :class:`RevocationFeed` yields :class:`RevocationEvent` values with strictly increasing
``seq`` after a given one, followed by heartbeats. Implementations:

* :class:`GrpcRevocationFeed` -- ``edgetrust.v1.Revocations/Watch`` on the verifier (production).
* :class:`FileRevocationFeed` -- a JSON-lines file that is followed like ``tail -f`` (standalone
  agents, demos, tests); one event per line, the fields of :class:`RevocationEvent`.
* :class:`StaticRevocationFeed` -- a fixed list (tests).

:class:`RevocationFollower` runs one feed on a thread, hands every event to a sink (the agent's
revocation set) and reconnects with backoff from the last applied ``seq`` when the feed fails.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import grpc

from edgetrust._proto.edgetrust.v1 import revocation_pb2, revocation_pb2_grpc
from edgetrust.errors import ConfigError, Error, MalformedError, UnavailableError

_log = logging.getLogger(__name__)


class RevocationKind(StrEnum):
    DEVICE = "device"
    CERTIFICATE = "certificate"
    HEARTBEAT = "heartbeat"


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationEvent:
    """One entry of the feed. ``seq`` of a heartbeat is the server's head (nothing is revoked)."""

    seq: int
    kind: RevocationKind
    ueid_hex: str = ""
    serial_hex: str = ""
    reason: str = ""
    revoked_at_unix_ms: int = 0

    def __post_init__(self) -> None:
        if self.seq < 0:
            raise MalformedError(f"revocation seq must be >= 0, not {self.seq}")
        if self.kind is RevocationKind.DEVICE and not self.ueid_hex:
            raise MalformedError(f"device revocation {self.seq} without ueid_hex")
        if self.kind is RevocationKind.CERTIFICATE and not self.serial_hex:
            raise MalformedError(f"certificate revocation {self.seq} without serial_hex")
        for name in ("ueid_hex", "serial_hex"):
            value = getattr(self, name)
            if value and not _is_lower_hex(value):
                raise MalformedError(f"revocation {self.seq}: {name} is not lower-case hex")

    @property
    def is_heartbeat(self) -> bool:
        return self.kind is RevocationKind.HEARTBEAT


def _is_lower_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def normalise_serial_hex(serial: int) -> str:
    """The feed's spelling of a certificate serial: lower-case hex, no leading zeros."""
    return format(serial, "x")


class RevocationFeed(Protocol):
    """A source of revocations: replay after ``after_seq``, then follow; blocks while idle.

    The iterator ends only when :meth:`close` is called; a broken feed raises
    :class:`~edgetrust.errors.UnavailableError` (the follower reconnects from its last seq).
    """

    def watch(self, after_seq: int) -> Iterator[RevocationEvent]: ...

    def close(self) -> None: ...


class RevocationSink(Protocol):
    """Where a follower delivers events (the agent's ``authz.RevocationSet``)."""

    @property
    def last_seq(self) -> int: ...

    def apply(self, event: RevocationEvent) -> None: ...

    def feed_lost(self) -> None: ...


# ------------------------------------------------------------------------------------------------
# gRPC (the verifier's edgetrust.v1.Revocations service)
# ------------------------------------------------------------------------------------------------

_KIND_FROM_PROTO = {
    revocation_pb2.REVOCATION_KIND_DEVICE: RevocationKind.DEVICE,
    revocation_pb2.REVOCATION_KIND_CERTIFICATE: RevocationKind.CERTIFICATE,
    revocation_pb2.REVOCATION_KIND_HEARTBEAT: RevocationKind.HEARTBEAT,
}

KIND_TO_PROTO = {kind: number for number, kind in _KIND_FROM_PROTO.items()}


def event_from_proto(message: Any) -> RevocationEvent:
    """Translate a ``RevocationEvent`` message; unknown kinds are refused (fail closed)."""
    kind = _KIND_FROM_PROTO.get(message.kind)
    if kind is None:
        raise MalformedError(f"revocation {message.seq} has unknown kind {message.kind}")
    return RevocationEvent(
        seq=int(message.seq),
        kind=kind,
        ueid_hex=str(message.ueid_hex),
        serial_hex=str(message.serial_hex),
        reason=str(message.reason),
        revoked_at_unix_ms=int(message.revoked_at_unix_ms),
    )


def event_to_proto(event: RevocationEvent) -> Any:
    return revocation_pb2.RevocationEvent(
        seq=event.seq,
        kind=KIND_TO_PROTO[event.kind],
        ueid_hex=event.ueid_hex,
        serial_hex=event.serial_hex,
        reason=event.reason,
        revoked_at_unix_ms=event.revoked_at_unix_ms,
    )


class GrpcRevocationFeed:
    """Follows ``edgetrust.v1.Revocations/Watch`` at ``target`` ("host:port")."""

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None,
        heartbeat_interval_ms: int = 1000,
        server_name: str | None = None,
    ) -> None:
        self._target = target
        self._credentials = credentials
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._options: list[tuple[str, Any]] = []
        if server_name:
            self._options.append(("grpc.ssl_target_name_override", server_name))
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._call: Any = None
        self._closed = False

    def watch(self, after_seq: int) -> Iterator[RevocationEvent]:
        with self._lock:
            if self._closed:
                return
            if self._channel is None:
                if self._credentials is None:
                    self._channel = grpc.insecure_channel(self._target, options=self._options)
                else:
                    self._channel = grpc.secure_channel(
                        self._target, self._credentials, options=self._options
                    )
            stub = revocation_pb2_grpc.RevocationsStub(self._channel)
            request = revocation_pb2.WatchRevocationsRequest(
                after_seq=after_seq, heartbeat_interval_ms=self._heartbeat_interval_ms
            )
            call = stub.Watch(request)
            self._call = call
        try:
            for message in call:
                yield event_from_proto(message)
        except grpc.RpcError as e:
            if self._closed:
                return
            code = e.code() if isinstance(e, grpc.Call) else None
            raise UnavailableError(
                f"revocation feed {self._target}: {code.name if code else 'error'}"
            ) from e
        if not self._closed:
            raise UnavailableError(f"revocation feed {self._target} ended the stream")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._call is not None:
                self._call.cancel()
            if self._channel is not None:
                self._channel.close()
                self._channel = None


# ------------------------------------------------------------------------------------------------
# Files and fixed lists
# ------------------------------------------------------------------------------------------------


def event_from_json(line: str, *, where: str = "revocation feed") -> RevocationEvent:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as e:
        raise MalformedError(f"{where}: not JSON: {e.msg}") from e
    if not isinstance(raw, dict):
        raise MalformedError(f"{where}: an event must be a JSON object")
    unknown = set(raw) - {
        "seq",
        "kind",
        "ueid_hex",
        "serial_hex",
        "reason",
        "revoked_at_unix_ms",
    }
    if unknown:
        raise MalformedError(f"{where}: unknown fields {sorted(unknown)}")
    try:
        seq = raw["seq"]
        kind = RevocationKind(raw["kind"])
    except (KeyError, ValueError) as e:
        raise MalformedError(f"{where}: seq and a known kind are required") from e
    fields = {k: raw.get(k, "") for k in ("ueid_hex", "serial_hex", "reason")}
    at = raw.get("revoked_at_unix_ms", 0)
    if any(not isinstance(v, int) or isinstance(v, bool) for v in (seq, at)):
        raise MalformedError(f"{where}: seq and revoked_at_unix_ms must be integers")
    if not all(isinstance(v, str) for v in fields.values()):
        raise MalformedError(f"{where}: ueid_hex, serial_hex and reason must be strings")
    try:
        return RevocationEvent(seq=seq, kind=kind, revoked_at_unix_ms=at, **fields)
    except MalformedError as e:
        raise MalformedError(f"{where}: {e.message}") from e


def event_to_json(event: RevocationEvent) -> str:
    return json.dumps(
        {
            "seq": event.seq,
            "kind": event.kind.value,
            "ueid_hex": event.ueid_hex,
            "serial_hex": event.serial_hex,
            "reason": event.reason,
            "revoked_at_unix_ms": event.revoked_at_unix_ms,
        },
        separators=(",", ":"),
    )


class FileRevocationFeed:
    """Follows a JSON-lines file (one :class:`RevocationEvent` per line, seq increasing).

    A missing file is an empty feed. The file is re-read every ``poll_interval`` seconds; a
    heartbeat (seq = the last seq in the file) is produced after each read, so followers see the
    feed as fresh while the file is readable.
    """

    def __init__(self, path: Path, *, poll_interval: float = 0.2) -> None:
        self._path = path
        self._poll = poll_interval
        self._stop = threading.Event()

    def watch(self, after_seq: int) -> Iterator[RevocationEvent]:
        last = after_seq
        while not self._stop.is_set():
            try:
                text = self._path.read_text() if self._path.exists() else ""
            except OSError as e:
                raise UnavailableError(f"revocation file {self._path}: {e.strerror}") from e
            head = last
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                event = event_from_json(line, where=f"{self._path}:{number}")
                if event.is_heartbeat:
                    continue
                head = max(head, event.seq)
                if event.seq > last:
                    last = event.seq
                    yield event
            yield RevocationEvent(seq=head, kind=RevocationKind.HEARTBEAT)
            self._stop.wait(self._poll)

    def close(self) -> None:
        self._stop.set()

    def append(self, event: RevocationEvent) -> None:
        """Append one event (for tools and tests that revoke without a verifier)."""
        with self._path.open("a") as f:
            f.write(event_to_json(event) + "\n")


class StaticRevocationFeed:
    """A fixed list of events, then heartbeats every ``heartbeat_interval`` until closed."""

    def __init__(
        self, events: Sequence[RevocationEvent] = (), *, heartbeat_interval: float = 0.2
    ) -> None:
        self._events = sorted(events, key=lambda e: e.seq)
        self._interval = heartbeat_interval
        self._stop = threading.Event()

    def watch(self, after_seq: int) -> Iterator[RevocationEvent]:
        head = after_seq
        for event in self._events:
            if event.seq > after_seq:
                head = max(head, event.seq)
                yield event
        while not self._stop.is_set():
            yield RevocationEvent(seq=head, kind=RevocationKind.HEARTBEAT)
            self._stop.wait(self._interval)

    def close(self) -> None:
        self._stop.set()


def feed_from_spec(
    spec: str,
    *,
    credentials_factory: Callable[[], grpc.ChannelCredentials | None],
    heartbeat_interval_ms: int = 1000,
    server_name: str | None = None,
) -> RevocationFeed | None:
    """``none`` -> None; ``file:PATH`` -> FileRevocationFeed; ``[grpc://]HOST:PORT`` -> gRPC."""
    if spec == "none":
        return None
    if spec.startswith("file:"):
        path = spec.removeprefix("file:").removeprefix("//")
        if not path:
            raise ConfigError("revocation feed 'file:' needs a path")
        return FileRevocationFeed(Path(path), poll_interval=min(0.25, heartbeat_interval_ms / 1e3))
    target = spec.removeprefix("grpc://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"revocation feed {spec!r} is not none, file:PATH or HOST:PORT")
    return GrpcRevocationFeed(
        target,
        credentials=credentials_factory(),
        heartbeat_interval_ms=heartbeat_interval_ms,
        server_name=server_name,
    )


# ------------------------------------------------------------------------------------------------
# Follower
# ------------------------------------------------------------------------------------------------


class RevocationFollower:
    """Runs a feed on a daemon thread; reconnects with capped exponential backoff.

    :attr:`age_s` is how long ago the feed last delivered anything (an event or a heartbeat).
    """

    def __init__(
        self,
        feed: RevocationFeed,
        sink: RevocationSink,
        *,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed = feed
        self._sink = sink
        self._min = min_backoff
        self._max = max_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._monotonic = monotonic
        self._started_at: float | None = None
        self._updated_at: float | None = None

    @property
    def age_s(self) -> float:
        """Seconds since the last event or heartbeat applied; before the first one, since
        :meth:`start` (so a feed that never answers ages like one that went silent); 0 before
        :meth:`start`."""
        since = self._updated_at if self._updated_at is not None else self._started_at
        return 0.0 if since is None else max(0.0, self._monotonic() - since)

    def start(self) -> RevocationFollower:
        if self._started_at is None:
            self._started_at = self._monotonic()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="revocation-follower", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._feed.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        backoff = self._min
        while not self._stop.is_set():
            try:
                for event in self._feed.watch(self._sink.last_seq):
                    if self._stop.is_set():
                        return
                    self._sink.apply(event)
                    self._updated_at = self._monotonic()
                    backoff = self._min
                if self._stop.is_set():
                    return
                _log.warning("revocation feed ended; reconnecting")
            except Error as e:
                _log.warning("revocation feed failed: %s; retrying in %.1f s", e, backoff)
            self._sink.feed_lost()
            self._stop.wait(backoff)
            backoff = min(self._max, backoff * 2)


def now_unix_ms() -> int:
    return int(time.time() * 1000)
