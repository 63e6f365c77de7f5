"""Group commit in the registry (SQLite and PostgreSQL): shared commits, isolated failures.

Each test holds the leader of the group commit inside a first write while the other writes queue,
so that they all run as ONE batch (one transaction, one savepoint each) when it is released.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select

from edgetrust.errors import (
    DuplicateRecordError,
    InvalidRequestError,
    NonceReplayError,
    StoreError,
)
from edgetrust.onboarding import ledger
from edgetrust.onboarding import schema as s
from edgetrust.onboarding.database import Database
from edgetrust.onboarding.records import AuditEvent, NonceClaim
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW, certificate, device

TTL = timedelta(minutes=5)


class Batch:
    """Queue writes behind a held leader, then release them as one batch."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._entered = threading.Event()
        self._release = threading.Event()
        self._threads: list[threading.Thread] = []
        self.outcomes: dict[int, Any] = {}
        self.batches_before = db.stats()["registry_batches"]

        def blocker(conn: Connection) -> None:
            self._entered.set()
            self._release.wait(30)

        leader = threading.Thread(target=db.write, args=(blocker,))
        leader.start()
        self._threads.append(leader)
        assert self._entered.wait(30)

    def add(self, call: Callable[[], Any]) -> None:
        index = len(self.outcomes) + len(self._threads) - 1
        queued = len(self._threads) - 1

        def run() -> None:
            try:
                self.outcomes[index] = call()
            except Exception as e:  # noqa: BLE001 - recorded for the assertions
                self.outcomes[index] = e

        thread = threading.Thread(target=run)
        thread.start()
        self._threads.append(thread)
        self._wait_queued(queued + 1)

    def _wait_queued(self, n: int) -> None:
        group = self.db._group
        for _ in range(2000):
            with group._lock:
                if len(group._queue) >= n:
                    return
            threading.Event().wait(0.005)
        raise AssertionError(f"{n} writes never queued")

    def release(self) -> dict[int, Any]:
        self._release.set()
        for thread in self._threads:
            thread.join(30)
        # the held write, then every queued write in ONE more batch
        assert self.db.stats()["registry_batches"] == self.batches_before + 2
        return self.outcomes


@pytest.fixture
def batch_store(db_url: str) -> Iterator[SqlRegistryStore]:
    with SqlRegistryStore(db_url) as store:
        yield store


def _nonce(i: int) -> bytes:
    return i.to_bytes(4, "big") * 8


def test_queued_writes_commit_together_and_a_failing_one_stores_nothing(
    batch_store: SqlRegistryStore,
) -> None:
    store = batch_store
    for i in (1, 2):
        store.issue_nonce(value=_nonce(i), session=None, now=NOW, ttl=TTL)

    def half_done(conn: Connection) -> None:
        store.database.cursor(conn).execute(
            store._sql.nonce_insert,
            (_nonce(99).hex(), None, None, store._sql.time(NOW), store._sql.time(NOW + TTL)),
        )
        raise InvalidRequestError("refused after its insert")

    batch = Batch(store.database)
    batch.add(lambda: store.issue_nonce(value=_nonce(3), session=None, now=NOW, ttl=TTL))
    batch.add(
        lambda: store.record_issuance(
            device=device(1), certificate=certificate(11), actor="t", now=NOW,
            nonce=NonceClaim(value=_nonce(1), session=None),
        )
    )  # fmt: skip
    batch.add(lambda: store.database.write(half_done))
    batch.add(
        lambda: store.record_issuance(
            device=device(2), certificate=certificate(12, n=2), actor="t", now=NOW,
            nonce=NonceClaim(value=_nonce(2), session=None),
        )
    )  # fmt: skip
    outcomes = batch.release()

    assert isinstance(outcomes[2], InvalidRequestError)
    assert outcomes[1].certificate.serial == 11
    assert outcomes[3].certificate.serial == 12
    assert [outcomes[1].audit_seq, outcomes[3].audit_seq] == [1, 2]
    assert store.get_certificate(11).nonce == _nonce(1)
    assert store.get_certificate(12).nonce == _nonce(2)
    values = {
        bytes.fromhex(v)
        for v in store.database.read(lambda c: c.execute(select(s.nonces.c.value)).scalars())
    }
    assert values == {_nonce(1), _nonce(2), _nonce(3)}  # not the failed write's 99
    assert store.verify_audit_chain().length == 2


def test_one_nonce_twice_in_a_batch_is_issued_once(batch_store: SqlRegistryStore) -> None:
    store = batch_store
    store.issue_nonce(value=_nonce(7), session=None, now=NOW, ttl=TTL)
    batch = Batch(store.database)
    for serial in (21, 22):
        batch.add(
            lambda serial=serial: store.record_issuance(
                device=device(serial), certificate=certificate(serial, n=serial), actor="t",
                now=NOW, nonce=NonceClaim(value=_nonce(7), session=None),
            )
        )  # fmt: skip
    outcomes = batch.release()
    assert outcomes[0].certificate.serial == 21
    assert isinstance(outcomes[1], NonceReplayError)
    assert [d.ueid for d in store.list_devices()] == [device(21).ueid]  # nothing of the loser
    assert store.verify_audit_chain().length == 1


def test_a_write_rolled_back_after_its_audit_entry_leaves_no_gap(
    batch_store: SqlRegistryStore,
) -> None:
    store = batch_store
    store.append_audit(AuditEvent(actor="t", action="a.first", subject="x", detail={}), now=NOW)

    def audit_then_fail(conn: Connection) -> None:
        event = AuditEvent(actor="t", action="a.undone", subject="x", detail={})
        ledger.append_audit(store.database, conn, event, NOW)
        raise InvalidRequestError("refused after its audit entry")

    def audit(action: str) -> Callable[[], Any]:
        event = AuditEvent(actor="t", action=action, subject="x", detail={})
        return lambda: store.append_audit(event, now=NOW)

    batch = Batch(store.database)
    batch.add(audit("a.second"))
    batch.add(lambda: store.database.write(audit_then_fail))
    batch.add(audit("a.third"))
    outcomes = batch.release()
    assert isinstance(outcomes[1], InvalidRequestError)
    assert [outcomes[0].seq, outcomes[2].seq] == [2, 3]
    assert [a.action for a in store.audit_since(0)] == ["a.first", "a.second", "a.third"]
    assert store.verify_audit_chain().length == 3


def test_a_duplicate_serial_in_a_batch_fails_alone(batch_store: SqlRegistryStore) -> None:
    store = batch_store
    batch = Batch(store.database)
    batch.add(
        lambda: store.record_issuance(
            device=device(1), certificate=certificate(5), actor="t", now=NOW
        )
    )
    batch.add(
        lambda: store.record_issuance(
            device=device(2), certificate=certificate(5, n=2), actor="t", now=NOW
        )
    )
    batch.add(
        lambda: store.record_issuance(
            device=device(3), certificate=certificate(6, n=3), actor="t", now=NOW
        )
    )
    outcomes = batch.release()
    assert isinstance(outcomes[1], DuplicateRecordError)
    assert [outcomes[0].certificate.serial, outcomes[2].certificate.serial] == [5, 6]
    assert {d.ueid for d in store.list_devices()} == {device(1).ueid, device(3).ueid}
    assert store.verify_audit_chain().length == 2


class _Deadlock(Exception):  # noqa: N818 - shaped like a driver error with an SQLSTATE
    sqlstate = "40P01"


def test_a_deadlocked_write_of_a_batch_runs_again_alone(batch_store: SqlRegistryStore) -> None:
    store = batch_store
    tries: list[int] = []

    def flaky(conn: Connection) -> str:
        tries.append(1)
        if len(tries) == 1:
            raise _Deadlock("deadlock detected")
        return "done"

    batch = Batch(store.database)
    batch.add(lambda: store.issue_nonce(value=_nonce(1), session=None, now=NOW, ttl=TTL))
    batch.add(lambda: store.database.write(flaky))
    outcomes = batch.release()
    assert outcomes[1] == "done"
    assert len(tries) == 2
    assert store.consume_nonce(_nonce(1), session=None, now=NOW).value == _nonce(1)


def test_nonce_writes_skip_the_disk_flush_and_issuances_do_not(
    batch_store: SqlRegistryStore,
) -> None:
    db = batch_store.database
    if db.dialect == "sqlite":
        setting = "PRAGMA synchronous"
        lazy, durable = 1, 2  # NORMAL, FULL (the store's default)
        _check_durability(db, setting, lazy, durable)
        with db.engine.connect() as conn:  # the pooled connection went back with FULL
            assert conn.exec_driver_sql(setting).scalar() == durable
        return
    # The test cluster runs with synchronous_commit=off: turn it on for this database's sessions.
    name = db.read(lambda conn: conn.exec_driver_sql("SELECT current_database()").scalar())
    db.write(
        lambda conn: conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    )
    db.engine.dispose()
    try:
        _check_durability(db, "SHOW synchronous_commit", "off", "on")
    finally:
        db.write(
            lambda conn: conn.exec_driver_sql(f'ALTER DATABASE "{name}" RESET synchronous_commit')
        )
        db.engine.dispose()


def _check_durability(db: Database, setting: str, lazy: object, durable: object) -> None:
    def read(conn: Connection) -> Any:
        return conn.exec_driver_sql(setting).scalar()

    assert db.write(read, durable=False) == lazy
    assert db.write(read) == durable
    # a lazy write inside a batch with a durable one: the batch is durable
    batch = Batch(db)
    batch.add(lambda: db.write(read, durable=False))
    batch.add(lambda: db.write(read))
    assert batch.release() == {0: durable, 1: durable}
    # a batch of lazy writes only: not flushed
    batch = Batch(db)
    batch.add(lambda: db.write(read, durable=False))
    batch.add(lambda: db.write(read, durable=False))
    assert batch.release() == {0: lazy, 1: lazy}


def test_a_locked_sqlite_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    with SqlRegistryStore(f"sqlite:///{path}", busy_timeout_ms=50) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(StoreError, match="unavailable") as caught:
                store.issue_nonce(value=_nonce(1), session=None, now=NOW, ttl=TTL)
            assert not isinstance(caught.value, sqlite3.Error)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        store.issue_nonce(value=_nonce(1), session=None, now=NOW, ttl=TTL)  # and it recovers


def test_sqlite_writes_keep_one_connection_at_full_and_replace_it_after_a_failure(
    tmp_path: Path,
) -> None:
    with SqlRegistryStore(f"sqlite:///{tmp_path / 'registry.db'}") as store:
        db = store.database

        def kept() -> Any:
            return db._writer_connection  # the connection the writers keep

        def synchronous() -> int:
            driver = kept().connection.driver_connection
            return int(driver.execute("PRAGMA synchronous").fetchone()[0])

        store.issue_nonce(value=_nonce(1), session=None, now=NOW, ttl=TTL)  # not durable
        first = kept()
        assert first is not None
        assert synchronous() == 2  # FULL again after the lazy commit
        store.issue_nonce(value=_nonce(2), session=None, now=NOW, ttl=TTL)
        assert kept() is first  # reused: no pool check-out per transaction
        with pytest.raises(DuplicateRecordError):
            store.issue_nonce(value=_nonce(2), session=None, now=NOW, ttl=TTL)
        assert kept() is None  # dropped after the failure
        store.issue_nonce(value=_nonce(3), session=None, now=NOW, ttl=TTL)
        assert kept() is not None
        assert kept() is not first
        assert synchronous() == 2
        assert store.consume_nonce(_nonce(3), session=None, now=NOW).used_at == NOW
    assert db._writer_connection is None  # closed with the store
