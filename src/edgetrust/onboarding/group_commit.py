"""Group commit: the concurrent write transactions of one process, run in batches, one commit each.

Every registry write waits for its commit before it returns (a certificate leaves the verifier
only after its record is committed). With ``synchronous = FULL`` (SQLite) or
``synchronous_commit = on`` (PostgreSQL) each commit waits for the disk, and the writers of one
registry are serialised anyway (SQLite's single write lock; PostgreSQL's audit advisory lock,
held until commit). One commit per write therefore caps the writes per second at one per disk
flush, whatever the number of threads. Group commit removes that cap the way databases do it
internally: writers queue; one of them -- the *leader* -- takes everything queued, runs each
write in turn inside ONE transaction (each in its own savepoint, so a failing write is undone
alone), commits once, and only then wakes every writer of the batch with its own result or error.
Writes that arrive while a batch commits form the next batch.

What a writer observes is unchanged: its work ran in a transaction that is committed (durably,
unless it asked otherwise) when :meth:`GroupCommit.submit` returns, or it failed and nothing of
it is stored. Within a batch the writes run one after another in arrival order, so each sees the
previous ones as if they had committed first: the same serial order the write lock gave before.

There is no writer thread: the leader is one of the callers (the first to find no leader), so an
idle process pays nothing and a lone write is a single transaction exactly as before. A leader
runs batches until its own write is done, then hands the leadership to the oldest queued writer.

This module knows nothing about SQL; :class:`edgetrust.onboarding.database.Database` supplies
the function that runs a batch.

Across processes (several verifier processes on one SQLite file), the leaders of the processes'
group commits meet at SQLite's write lock, whose busy handler *sleeps* (1, 2, 5 ... 100 ms)
between attempts instead of queueing: two busy processes then starve each other (p99 over a
second measured with two verifier processes). :class:`WriterLock` makes them queue in the kernel
instead: an exclusive ``flock`` on a lock file next to the database, taken right before the write
transaction begins and released right after it ends, so a waiting leader wakes the moment the
other commits. It orders; it guarantees nothing: correctness still rests on SQLite's own lock
(a writer that does not take the file lock -- another tool -- is simply not queued).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edgetrust.errors import ConfigError, StoreError

__all__ = ["GroupCommit", "WriteRequest", "WriterLock"]


class WriteRequest:
    """One queued write: its work, whether it must be durable, and (once settled) its outcome."""

    __slots__ = ("_error", "_result", "_settled", "_wake", "durable", "work")

    def __init__(self, work: Callable[[Any], Any], *, durable: bool) -> None:
        self.work = work
        self.durable = durable
        self._result: Any = None
        self._error: BaseException | None = None
        self._settled = False
        self._wake = threading.Event()

    @property
    def settled(self) -> bool:
        return self._settled

    def wait(self) -> None:
        """Block until settled or appointed leader."""
        self._wake.wait()

    def wake(self) -> None:
        self._wake.set()

    def resolve(self, result: Any) -> None:
        """The write is committed; ``result`` is what its work returned."""
        self._result, self._settled = result, True

    def fail(self, error: BaseException) -> None:
        """The write is not stored; ``error`` is raised to its caller."""
        self._error, self._settled = error, True

    def outcome(self) -> Any:
        if not self._settled:  # pragma: no cover - the leader settles every request it takes
            raise StoreError("internal error: a registry write was never settled")
        if self._error is not None:
            raise self._error
        return self._result


class GroupCommit:
    """Batches the writes submitted by concurrent threads (see the module documentation).

    ``run_batch`` must settle (resolve or fail) every request it is given and must not raise for
    an individual write's failure; if it raises anyway, the requests it left unsettled fail with
    a :class:`StoreError` and the exception propagates in the leader's thread.
    """

    def __init__(
        self, run_batch: Callable[[Sequence[WriteRequest]], None], *, max_batch: int = 256
    ) -> None:
        if max_batch < 1:
            raise ConfigError("group commit: max_batch must be at least 1")
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[WriteRequest] = []
        self._leading = False
        self._running = threading.local()  # set in the leader's thread while a batch runs
        #: batches run and writes they carried (for metrics); updated by the leader only
        self.batches = 0
        self.writes = 0

    def submit(self, work: Callable[[Any], Any], *, durable: bool = True) -> Any:
        """Queue ``work`` and return its result once the batch holding it has committed."""
        if getattr(self._running, "batch", False):
            # The leader would wait for itself: a write may not start another write.
            raise StoreError("internal error: a registry write started inside another write")
        request = WriteRequest(work, durable=durable)
        with self._lock:
            self._queue.append(request)
            lead = not self._leading
            self._leading = True
        if not lead:
            request.wait()  # settled, or appointed leader
            if request.settled:
                return request.outcome()
        self._lead(request)
        return request.outcome()

    def _lead(self, mine: WriteRequest) -> None:
        try:
            while not mine.settled:
                with self._lock:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                self._running.batch = True
                try:
                    self._run_batch(batch)
                finally:
                    self._running.batch = False
                    for request in batch:
                        if not request.settled:
                            request.fail(StoreError("the registry write batch was aborted"))
                    self.batches += 1
                    self.writes += len(batch)
                    for request in batch:
                        if request is not mine:
                            request.wake()
        except BaseException:
            with self._lock:
                if mine in self._queue:
                    self._queue.remove(mine)
            if not mine.settled:
                mine.fail(StoreError("the registry write batch was aborted"))
            raise
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].wake()  # unsettled: it leads next
                else:
                    self._leading = False


class WriterLock:
    """An exclusive ``flock`` on ``path`` that orders the write transactions of processes.

    One per database handle, held by one thread at a time (the group commit's leader). The file
    is opened on first use; where it cannot be (a read-only directory), :meth:`held` does nothing
    and the writers fall back to SQLite's busy handler. A process that dies releases it. A writer
    stopped (SIGSTOP) inside a transaction keeps the other processes' writers waiting until it
    continues or dies, where SQLite alone would fail them after its busy timeout.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._unusable = False

    def _open(self) -> int | None:
        if self._fd is None and not self._unusable:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._unusable = True
        return self._fd

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = self._open()
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks without the GIL; woken by the holder's unlock
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
