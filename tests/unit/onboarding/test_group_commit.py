"""GroupCommit without a database: batching, one outcome per writer, leadership hand-over; the
WriterLock that queues the writers of several processes."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from edgetrust.errors import ConfigError, StoreError
from edgetrust.onboarding.group_commit import GroupCommit, WriteRequest, WriterLock


class Recorder:
    """A run_batch that applies each write to a list and can be held on its first batch."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def __call__(self, batch: Sequence[WriteRequest]) -> None:
        self.entered.set()
        self.hold.wait(10)
        self.batches.append([r.work for r in batch])
        for request in batch:
            try:
                request.resolve(request.work(None))
            except Exception as e:  # noqa: BLE001 - handed to the writer
                request.fail(e)


def _submit_in_threads(
    group: GroupCommit, works: Sequence[Callable[[Any], Any]], *, durable: bool = True
) -> tuple[list[threading.Thread], dict[int, Any]]:
    outcomes: dict[int, Any] = {}

    def run(i: int, work: Callable[[Any], Any]) -> None:
        try:
            outcomes[i] = group.submit(work, durable=durable)
        except Exception as e:  # noqa: BLE001 - recorded for the assertions
            outcomes[i] = e

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(works)]
    for t in threads:
        t.start()
    return threads, outcomes


def _wait_queued(group: GroupCommit, n: int) -> None:
    for _ in range(1000):
        with group._lock:
            if len(group._queue) >= n:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{n} writes never queued")


def test_a_lone_write_is_a_batch_of_one() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder)
    assert group.submit(lambda _: 42) == 42
    assert [len(b) for b in recorder.batches] == [1]
    assert (group.batches, group.writes) == (1, 1)


def test_writes_that_arrive_during_a_batch_share_the_next_one_in_order() -> None:
    recorder = Recorder()
    recorder.hold.clear()
    group = GroupCommit(recorder)
    first, first_out = _submit_in_threads(group, [lambda _: "first"])
    assert recorder.entered.wait(10)
    works = [lambda _, i=i: i * 10 for i in range(8)]
    rest, outcomes = _submit_in_threads(group, works)
    _wait_queued(group, 8)
    recorder.hold.set()
    for t in first + rest:
        t.join(10)
    assert first_out == {0: "first"}
    assert outcomes == {i: i * 10 for i in range(8)}  # each writer got its own result
    assert [len(b) for b in recorder.batches] == [1, 8]
    assert recorder.batches[1] == works  # arrival order kept


def test_a_failing_write_fails_alone() -> None:
    recorder = Recorder()
    recorder.hold.clear()
    group = GroupCommit(recorder)
    first, _ = _submit_in_threads(group, [lambda _: None])
    assert recorder.entered.wait(10)

    def bad(_: Any) -> Any:
        raise StoreError("this write is refused")

    rest, outcomes = _submit_in_threads(group, [lambda _: 1, bad, lambda _: 3])
    _wait_queued(group, 3)
    recorder.hold.set()
    for t in first + rest:
        t.join(10)
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], StoreError)
    assert outcomes[2] == 3


def test_max_batch_splits_a_long_queue() -> None:
    recorder = Recorder()
    recorder.hold.clear()
    group = GroupCommit(recorder, max_batch=3)
    first, _ = _submit_in_threads(group, [lambda _: None])
    assert recorder.entered.wait(10)
    rest, outcomes = _submit_in_threads(group, [lambda _, i=i: i for i in range(7)])
    _wait_queued(group, 7)
    recorder.hold.set()
    for t in first + rest:
        t.join(10)
    assert outcomes == {i: i for i in range(7)}
    assert sorted(len(b) for b in recorder.batches[1:]) == [1, 3, 3]


def test_a_crashing_batch_runner_fails_its_batch_and_hands_over() -> None:
    calls = []

    def runner(batch: Sequence[WriteRequest]) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise KeyError("runner bug")
        for request in batch:
            request.resolve("ok")

    group = GroupCommit(runner)
    with pytest.raises(KeyError):
        group.submit(lambda _: None)
    assert group.submit(lambda _: None) == "ok"  # the group is still usable


def test_unsettled_requests_of_a_crashed_batch_get_a_store_error() -> None:
    hold = threading.Event()
    entered = threading.Event()
    seen: list[int] = []

    def runner(batch: Sequence[WriteRequest]) -> None:
        seen.append(len(batch))
        if len(seen) == 1:
            entered.set()
            hold.wait(10)
            for request in batch:
                request.resolve("first")
            return
        raise KeyError("runner bug")

    group = GroupCommit(runner)
    first, first_out = _submit_in_threads(group, [lambda _: None])
    assert entered.wait(10)
    rest, outcomes = _submit_in_threads(group, [lambda _: None, lambda _: None])
    _wait_queued(group, 2)
    hold.set()
    for t in first + rest:
        t.join(10)
    assert first_out == {0: "first"}
    # the leader of the second batch sees the runner's own exception; the other a StoreError
    kinds = sorted(type(v).__name__ for v in outcomes.values())
    assert kinds == ["KeyError", "StoreError"]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        GroupCommit(lambda batch: None, max_batch=0)


def test_a_write_inside_a_write_is_refused_not_deadlocked() -> None:
    group = GroupCommit(Recorder())
    with pytest.raises(StoreError, match="inside another write"):
        group.submit(lambda _: group.submit(lambda _: None))
    assert group.submit(lambda _: "still usable") == "still usable"


# ---------------------------------------------------------------------- WriterLock


def test_writer_lock_makes_another_handle_wait_until_released(tmp_path: Path) -> None:
    # Two handles = two open file descriptions, as in two processes: flock excludes them.
    first, second = (
        WriterLock(tmp_path / "db-writers.lock"),
        WriterLock(tmp_path / "db-writers.lock"),
    )
    order: list[str] = []
    entered = threading.Event()

    def other() -> None:
        with second.held():
            order.append("second")

    with first.held():
        thread = threading.Thread(target=other)
        thread.start()
        entered.wait(0.2)  # give it every chance to get in (it must not)
        time.sleep(0.05)
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]
    assert (tmp_path / "db-writers.lock").stat().st_mode & 0o777 == 0o600
    first.close()
    second.close()


def test_writer_lock_is_released_when_the_work_fails(tmp_path: Path) -> None:
    lock, other = WriterLock(tmp_path / "l"), WriterLock(tmp_path / "l")
    with pytest.raises(RuntimeError), lock.held():
        raise RuntimeError("work failed")
    probe = os.open(tmp_path / "l", os.O_RDWR)
    try:
        # free again (the other handle gets it), and held while its block runs:
        with other.held(), pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after the block
    finally:
        os.close(probe)
    lock.close()
    other.close()


def test_writer_lock_in_an_unwritable_place_orders_nothing(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "missing-directory" / "l")
    with lock.held():  # no file, no error: SQLite's own lock still decides
        pass
    lock.close()
