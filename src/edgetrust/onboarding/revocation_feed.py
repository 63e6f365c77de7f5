"""The revocation feed (``edgetrust.v1.Revocations/Watch``) the verifier serves to agents.

Contract (``proto/edgetrust/v1/revocation.proto``): replay every revocation with ``seq >
after_seq`` in order, then one HEARTBEAT carrying the head ``seq``, then follow: each new
revocation within about a poll interval of its commit, and a HEARTBEAT after every heartbeat
interval without one. The events come from the registry's append-only revocation sequence
(:meth:`~edgetrust.onboarding.store.SqlRegistryStore.revocations_since`).

Only agents may follow it: the feed answers on the verifier's mTLS port (a client certificate from
the cluster CA) and refuses a caller without a certificate, or one whose SPIFFE ID names a device,
with PERMISSION_DENIED.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import grpc

from edgetrust._proto.edgetrust.v1 import revocation_pb2, revocation_pb2_grpc
from edgetrust.errors import StoreError
from edgetrust.onboarding.records import RevocationEvent, RevocationKind

__all__ = ["REVOCATIONS_SERVICE", "FeedSettings", "RevocationSource", "RevocationsServicer"]

REVOCATIONS_SERVICE = "edgetrust.v1.Revocations"


class RevocationSource(Protocol):
    """The registry's append-only revocation sequence (the store implements it)."""

    def revocation_head(self) -> int: ...

    def revocations_since(
        self, after_seq: int, *, limit: int = ...
    ) -> Sequence[RevocationEvent]: ...


class FeedCounter(Protocol):
    def bump(self, name: str, by: int = 1) -> None: ...


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # pragma: no cover - context.abort always raises


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSettings:
    """Timing of the revocation feed (``proto/edgetrust/v1/revocation.proto``)."""

    poll_interval_s: float = 0.2
    default_heartbeat_ms: int = 2000
    min_heartbeat_ms: int = 200
    max_heartbeat_ms: int = 30000
    batch: int = 500


class RevocationsServicer(revocation_pb2_grpc.RevocationsServicer):  # type: ignore[misc]
    """Serves the registry's revocations to agents as a stream (replay, heartbeat, follow)."""

    def __init__(
        self,
        source: RevocationSource,
        settings: FeedSettings,
        stopping: threading.Event,
        metrics: FeedCounter,
        *,
        require_client_cert: bool,
    ) -> None:
        self._source = source
        self._settings = settings
        self._stopping = stopping
        self._metrics = metrics
        self._require_client_cert = require_client_cert

    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        identities = [
            i.decode(errors="replace") if isinstance(i, bytes) else str(i)
            for i in context.peer_identities() or ()
        ]
        if self._require_client_cert and not identities:
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "the revocation feed needs a client certificate from the cluster CA "
                "(connect to the feed port)",
            )
        if any(i.startswith("spiffe://") and "/device/" in i for i in identities):
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "a device certificate is not an agent's: the revocation feed is for agents",
            )
        settings = self._settings
        after: int = int(request.after_seq)
        wished: int = int(request.heartbeat_interval_ms) or settings.default_heartbeat_ms
        heartbeat_s = min(max(wished, settings.min_heartbeat_ms), settings.max_heartbeat_ms) / 1000
        try:
            head = self._source.revocation_head()
        except StoreError as e:
            _abort(context, grpc.StatusCode.UNAVAILABLE, e.message)
        if after > head:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"after_seq {after} is ahead of the registry's head {head}",
            )
        self._metrics.bump("feed_watchers")
        caught_up = False
        last_sent = time.monotonic()
        while context.is_active() and not self._stopping.is_set():
            try:
                rows = self._source.revocations_since(after, limit=settings.batch)
            except StoreError as e:
                _abort(context, grpc.StatusCode.UNAVAILABLE, e.message)
            for row in rows:
                after = max(after, row.seq)
                yield _revocation_event(row)
                last_sent = time.monotonic()
            if len(rows) >= settings.batch:
                continue  # still replaying
            now = time.monotonic()
            if not caught_up or now - last_sent >= heartbeat_s:
                caught_up = True
                yield revocation_pb2.RevocationEvent(
                    seq=after, kind=revocation_pb2.REVOCATION_KIND_HEARTBEAT
                )
                last_sent = now
            self._stopping.wait(settings.poll_interval_s)


def _revocation_event(event: RevocationEvent) -> Any:
    kind = (
        revocation_pb2.REVOCATION_KIND_CERTIFICATE
        if event.kind is RevocationKind.CERTIFICATE
        else revocation_pb2.REVOCATION_KIND_DEVICE
    )
    return revocation_pb2.RevocationEvent(
        seq=event.seq,
        kind=kind,
        ueid_hex=event.ueid.hex(),
        serial_hex=event.serial_hex or "",
        reason=event.reason,
        revoked_at_unix_ms=int(event.revoked_at.timestamp() * 1000),
    )
