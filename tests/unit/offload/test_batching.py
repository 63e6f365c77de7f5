"""DynamicBatcher: per-caller results, batch bounds, back-pressure, cancellation, deadlines."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np
import numpy.typing as npt
import pytest

from edgetrust.errors import (
    ConfigError,
    DeadlineExceededError,
    InferenceError,
    InvalidRequestError,
    OverloadedError,
    UnavailableError,
)
from edgetrust.offload.batching import BatchResult, BatchSettings, DynamicBatcher

Array = npt.NDArray[np.generic]


def row_sums(batch: Array) -> Array:
    """A stand-in model: one output row per input row (its sum and its first value)."""
    flat = batch.reshape(batch.shape[0], -1).astype(np.float64)
    return np.stack([flat.sum(axis=1), flat[:, 0]], axis=1)


def settings(**kw: object) -> BatchSettings:
    base: dict[str, object] = {"max_batch_size": 8, "max_queue_delay_ms": 2.0, "max_queue_size": 64}
    base.update(kw)
    return BatchSettings(**base)  # type: ignore[arg-type]


def results(futures: list[Future[BatchResult]]) -> list[BatchResult]:
    return [f.result(timeout=5) for f in futures]


def test_each_concurrent_caller_gets_its_own_row() -> None:
    with DynamicBatcher(row_sums, settings=settings(max_queue_delay_ms=5)) as batcher:
        answers: dict[int, float] = {}
        errors: list[BaseException] = []

        def caller(i: int) -> None:
            try:
                data = np.full((3, 4), i, dtype=np.float32)
                answers[i] = float(batcher.submit(data).result(timeout=5).output[1])
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert not errors
    assert answers == {i: float(i) for i in range(32)}
    assert batcher.stats.requests == 32


def test_queued_requests_leave_as_one_batch() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings())
    futures = [batcher.submit(np.full((2,), i, dtype=np.float32)) for i in range(5)]
    batcher.start()
    try:
        out = results(futures)
    finally:
        batcher.close()
    assert [r.batch_size for r in out] == [5] * 5
    assert [float(r.output[0]) for r in out] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert batcher.stats.batch_sizes == {5: 1}


def test_max_batch_size_bounds_each_batch() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings(max_batch_size=4))
    futures = [batcher.submit(np.full((2,), i, dtype=np.float32)) for i in range(10)]
    batcher.start()
    try:
        out = results(futures)
    finally:
        batcher.close()
    assert [r.batch_size for r in out] == [4] * 8 + [2] * 2
    assert batcher.stats.batch_sizes == {4: 2, 2: 1}


def test_batch_size_one_runs_each_request_alone() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings(max_batch_size=1))
    futures = [batcher.submit(np.full((2,), i, dtype=np.float32)) for i in range(3)]
    with batcher:
        out = results(futures)
    assert [r.batch_size for r in out] == [1, 1, 1]


def test_different_shapes_are_never_stacked_together() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings())
    small = [batcher.submit(np.ones((2,), dtype=np.float32)) for _ in range(3)]
    large = [batcher.submit(np.ones((5,), dtype=np.float32)) for _ in range(2)]
    other_dtype = batcher.submit(np.ones((2,), dtype=np.float64))
    with batcher:
        out_small, out_large = results(small), results(large)
        out_other = other_dtype.result(timeout=5)
    assert {r.batch_size for r in out_small} == {3}
    assert {float(r.output[0]) for r in out_small} == {2.0}
    assert {r.batch_size for r in out_large} == {2}
    assert {float(r.output[0]) for r in out_large} == {5.0}
    assert out_other.batch_size == 1


def test_full_queue_is_refused_at_once() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings(max_queue_size=2))
    batcher.submit(np.ones((1,), dtype=np.float32))
    batcher.submit(np.ones((1,), dtype=np.float32))
    with pytest.raises(OverloadedError, match="queue full"):
        batcher.submit(np.ones((1,), dtype=np.float32))
    assert batcher.stats.rejected == 1
    batcher.close()


def test_cancelled_request_takes_no_place_in_a_batch() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings())
    keep = batcher.submit(np.full((1,), 1, dtype=np.float32))
    dropped = batcher.submit(np.full((1,), 2, dtype=np.float32))
    assert dropped.cancel()
    with batcher:
        result = keep.result(timeout=5)
    assert result.batch_size == 1
    assert batcher.stats.cancelled == 1
    assert dropped.cancelled()


def test_request_past_its_deadline_fails_with_deadline_exceeded() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings())
    late = batcher.submit(np.ones((1,), dtype=np.float32), deadline=time.monotonic() - 1)
    fine = batcher.submit(np.ones((1,), dtype=np.float32), deadline=time.monotonic() + 60)
    with batcher:
        with pytest.raises(DeadlineExceededError):
            late.result(timeout=5)
        assert fine.result(timeout=5).batch_size == 1
    assert batcher.stats.expired == 1


def test_runtime_failure_reaches_every_caller_as_inference_error() -> None:
    def broken(batch: Array) -> Array:
        raise RuntimeError("kaboom")

    batcher = DynamicBatcher(broken, settings=settings())
    futures = [batcher.submit(np.ones((1,), dtype=np.float32)) for _ in range(3)]
    with batcher:
        for f in futures:
            with pytest.raises(InferenceError, match="kaboom"):
                f.result(timeout=5)


def test_our_errors_from_the_model_pass_through_unchanged() -> None:
    def picky(batch: Array) -> Array:
        raise InvalidRequestError("wrong shape")

    batcher = DynamicBatcher(picky, settings=settings())
    future = batcher.submit(np.ones((1,), dtype=np.float32))
    with batcher, pytest.raises(InvalidRequestError, match="wrong shape"):
        future.result(timeout=5)


def test_model_returning_the_wrong_number_of_rows_is_an_inference_error() -> None:
    batcher = DynamicBatcher(lambda b: np.zeros((1, 2)), settings=settings())
    futures = [batcher.submit(np.ones((1,), dtype=np.float32)) for _ in range(2)]
    with batcher:
        for f in futures:
            with pytest.raises(InferenceError, match="1 rows for a batch of 2"):
                f.result(timeout=5)


def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings())
    queued = batcher.submit(np.ones((1,), dtype=np.float32))
    batcher.close()
    with pytest.raises(UnavailableError, match="shutting down"):
        queued.result(timeout=1)
    with pytest.raises(UnavailableError, match="shutting down"):
        batcher.submit(np.ones((1,), dtype=np.float32))


def test_lone_caller_does_not_pay_the_queue_delay() -> None:
    with DynamicBatcher(row_sums, settings=settings(max_queue_delay_ms=2000)) as batcher:
        started = time.monotonic()
        batcher.submit(np.ones((1,), dtype=np.float32)).result(timeout=5)
        assert time.monotonic() - started < 1.0


def test_batch_waits_for_an_announced_caller() -> None:
    with DynamicBatcher(row_sums, settings=settings(max_queue_delay_ms=3000)) as batcher:
        with batcher.expect() as slot:
            first = batcher.submit(np.full((1,), 1, dtype=np.float32))
            time.sleep(0.05)
            assert not first.done()  # held back: an announced caller is still on its way
            second = slot.submit(np.full((1,), 2, dtype=np.float32))
        assert first.result(timeout=5).batch_size == 2
        assert float(second.result(timeout=5).output[0]) == 2.0


def test_withdrawn_announcement_releases_the_batch() -> None:
    with DynamicBatcher(row_sums, settings=settings(max_queue_delay_ms=3000)) as batcher:
        started = time.monotonic()
        with batcher.expect():
            first = batcher.submit(np.ones((1,), dtype=np.float32))
        assert first.result(timeout=5).batch_size == 1
        assert time.monotonic() - started < 1.0


def test_expectation_submits_only_once() -> None:
    batcher = DynamicBatcher(row_sums, settings=settings())
    with batcher.expect() as slot:
        slot.submit(np.ones((1,), dtype=np.float32))
        with pytest.raises(InferenceError, match="once"):
            slot.submit(np.ones((1,), dtype=np.float32))
    batcher.close()


def test_without_early_dispatch_the_batch_waits_the_full_delay() -> None:
    with DynamicBatcher(
        row_sums, settings=settings(max_queue_delay_ms=150, early_dispatch=False)
    ) as batcher:
        started = time.monotonic()
        result = batcher.submit(np.ones((1,), dtype=np.float32)).result(timeout=5)
    assert time.monotonic() - started >= 0.14
    assert result.queue_s >= 0.14


@pytest.mark.parametrize(
    "bad",
    [
        {"max_batch_size": 0},
        {"max_batch_size": 5000},
        {"max_queue_delay_ms": -1},
        {"max_queue_size": 0},
        {"workers": 0},
    ],
)
def test_invalid_settings_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        settings(**bad)


def test_idle_batcher_runs_a_lone_request_in_the_caller_thread() -> None:
    threads: list[str] = []

    def record(batch: Array) -> Array:
        threads.append(threading.current_thread().name)
        return row_sums(batch)

    with DynamicBatcher(record, settings=settings()) as batcher:
        future = batcher.submit(np.ones((1,), dtype=np.float32))
        assert future.done()  # resolved before submit returned
        assert future.result().batch_size == 1
    assert threads == [threading.current_thread().name]


def test_requests_arriving_while_every_slot_is_busy_leave_as_one_batch() -> None:
    release = threading.Event()
    calls: list[int] = []

    def slow(batch: Array) -> Array:
        calls.append(len(batch))
        if len(calls) == 1:
            release.wait(5)
        return row_sums(batch)

    with DynamicBatcher(slow, settings=settings(workers=1)) as batcher:
        first = threading.Thread(target=lambda: batcher.submit(np.ones((1,), dtype=np.float32)))
        first.start()
        assert wait_until(lambda: calls == [1])  # the only run slot is taken inline
        queued = [batcher.submit(np.full((1,), i, dtype=np.float32)) for i in range(5)]
        assert batcher.queued == 5
        release.set()
        out = results(queued)
        first.join(5)
    assert calls == [1, 5]
    assert [float(r.output[0]) for r in out] == [0.0, 1.0, 2.0, 3.0, 4.0]


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False
