"""The revocation feed: event validation, file/static/proto feeds, the follower's reconnects."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrust._proto.edgetrust.v1 import revocation_pb2
from edgetrust.errors import ConfigError, MalformedError, UnavailableError
from edgetrust.offload.authz import RevocationSet
from edgetrust.offload.feed import (
    FileRevocationFeed,
    GrpcRevocationFeed,
    RevocationEvent,
    RevocationFollower,
    RevocationKind,
    StaticRevocationFeed,
    event_from_json,
    event_from_proto,
    event_to_json,
    event_to_proto,
    feed_from_spec,
)


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


DEVICE = RevocationEvent(seq=1, kind=RevocationKind.DEVICE, ueid_hex="0a0b", reason="lost")
CERT = RevocationEvent(seq=2, kind=RevocationKind.CERTIFICATE, serial_hex="1f", ueid_hex="0a0b")


# -- values ---------------------------------------------------------------------------------------


def test_device_event_without_ueid_is_malformed() -> None:
    with pytest.raises(MalformedError, match="without ueid_hex"):
        RevocationEvent(seq=1, kind=RevocationKind.DEVICE)


def test_certificate_event_without_serial_is_malformed() -> None:
    with pytest.raises(MalformedError, match="without serial_hex"):
        RevocationEvent(seq=1, kind=RevocationKind.CERTIFICATE, ueid_hex="0a")


def test_upper_case_hex_is_malformed() -> None:
    with pytest.raises(MalformedError, match="lower-case hex"):
        RevocationEvent(seq=1, kind=RevocationKind.DEVICE, ueid_hex="0A0B")


def test_negative_seq_is_malformed() -> None:
    with pytest.raises(MalformedError, match="seq"):
        RevocationEvent(seq=-1, kind=RevocationKind.HEARTBEAT)


@pytest.mark.parametrize(
    "event", [DEVICE, CERT, RevocationEvent(seq=7, kind=RevocationKind.HEARTBEAT)]
)
def test_json_and_proto_round_trips(event: RevocationEvent) -> None:
    assert event_from_json(event_to_json(event)) == event
    assert event_from_proto(event_to_proto(event)) == event


def test_proto_event_of_unknown_kind_is_refused() -> None:
    message = revocation_pb2.RevocationEvent(seq=1, kind=revocation_pb2.REVOCATION_KIND_UNSPECIFIED)
    with pytest.raises(MalformedError, match="unknown kind"):
        event_from_proto(message)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"seq": 1}', "known kind"),
        ('{"seq": 1, "kind": "virus"}', "known kind"),
        ('{"seq": "1", "kind": "heartbeat"}', "integers"),
        ('{"seq": 1, "kind": "device", "ueid_hex": 5}', "strings"),
        ('{"seq": 1, "kind": "heartbeat", "extra": 1}', "unknown fields"),
    ],
)
def test_bad_json_events_are_malformed(line: str, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        event_from_json(line)


# -- feeds ----------------------------------------------------------------------------------------


def test_static_feed_replays_after_seq_then_heartbeats() -> None:
    feed = StaticRevocationFeed([CERT, DEVICE], heartbeat_interval=0.01)
    events = feed.watch(1)
    assert next(events) == CERT
    assert next(events) == RevocationEvent(seq=2, kind=RevocationKind.HEARTBEAT)
    feed.close()


def test_file_feed_follows_appends(tmp_path: Path) -> None:
    path = tmp_path / "revocations.jsonl"
    feed = FileRevocationFeed(path, poll_interval=0.01)
    events = feed.watch(0)
    assert next(events).is_heartbeat  # a missing file is an empty feed
    feed.append(DEVICE)
    got = [next(events) for _ in range(3)]
    assert DEVICE in got
    feed.close()


def test_file_feed_with_a_bad_line_raises_malformed(tmp_path: Path) -> None:
    path = tmp_path / "revocations.jsonl"
    path.write_text(json.dumps({"seq": 1, "kind": "device"}) + "\n")
    with pytest.raises(MalformedError, match=r"revocations\.jsonl:1: device revocation"):
        next(FileRevocationFeed(path).watch(0))


def test_feed_specs() -> None:
    def no_creds() -> None:
        return None

    assert feed_from_spec("none", credentials_factory=no_creds) is None
    assert isinstance(
        feed_from_spec("file:/x.jsonl", credentials_factory=no_creds), FileRevocationFeed
    )
    grpc_feed = feed_from_spec("grpc://127.0.0.1:1", credentials_factory=no_creds)
    assert isinstance(grpc_feed, GrpcRevocationFeed)
    grpc_feed.close()
    for bad in ("file:", "nowhere", "host:port"):
        with pytest.raises(ConfigError):
            feed_from_spec(bad, credentials_factory=no_creds)


def test_grpc_feed_to_nowhere_raises_unavailable() -> None:
    feed = GrpcRevocationFeed("127.0.0.1:1", credentials=None)
    with pytest.raises(UnavailableError, match=r"revocation feed 127\.0\.0\.1:1"):
        next(feed.watch(0))
    feed.close()


# -- follower -------------------------------------------------------------------------------------


class FlakyFeed:
    """Fails once, then serves its events from the asked seq; records the seqs asked for."""

    def __init__(self, events: list[RevocationEvent]) -> None:
        self.events = events
        self.asked: list[int] = []
        self.stop = threading.Event()

    def watch(self, after_seq: int) -> Iterator[RevocationEvent]:
        self.asked.append(after_seq)
        if len(self.asked) == 1:
            yield self.events[0]
            raise UnavailableError("connection reset")
        for event in self.events:
            if event.seq > after_seq:
                yield event
        while not self.stop.wait(0.01):
            yield RevocationEvent(seq=self.events[-1].seq, kind=RevocationKind.HEARTBEAT)

    def close(self) -> None:
        self.stop.set()


def test_follower_reconnects_from_the_last_applied_seq() -> None:
    feed = FlakyFeed([DEVICE, CERT])
    revs = RevocationSet(require_feed=True)
    follower = RevocationFollower(feed, revs, min_backoff=0.01).start()
    try:
        assert wait_until(lambda: revs.last_seq == 2)
        revs.check_fresh()
    finally:
        follower.stop()
    assert feed.asked[:2] == [0, 1]


@settings(max_examples=300, deadline=None)
@given(
    line=st.one_of(
        st.text(max_size=200),
        st.dictionaries(
            st.sampled_from(["seq", "kind", "ueid_hex", "serial_hex", "reason", "extra"]),
            st.one_of(
                st.integers(), st.text(max_size=10), st.none(), st.booleans(),
                st.sampled_from(["device", "certificate", "heartbeat", "0a0b", "1f"]),
            ),
        ).map(json.dumps),
    )
)  # fmt: skip
def test_any_json_line_gives_an_event_or_malformed(line: str) -> None:
    try:
        event = event_from_json(line)
    except MalformedError:
        return
    assert event_from_json(event_to_json(event)) == event
