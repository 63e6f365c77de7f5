"""The registry's database connection: URL parsing, engine set-up, schema creation, transactions.

Two databases, one code path (SQLAlchemy Core 2):

* **SQLite** (``sqlite:///PATH``), the embedded default. Every connection runs with
  ``journal_mode=WAL`` (readers never block the single writer), ``busy_timeout`` (a writer of
  another process waits instead of failing), ``foreign_keys=ON`` and ``synchronous=FULL``.
  FULL is chosen over NORMAL on purpose: in WAL mode NORMAL survives a process crash (SIGKILL)
  but a power cut or kernel crash may roll back the last commits -- commits for which the verifier
  has already handed a certificate to a device. FULL syncs the WAL on each commit, so "returned
  only after committed" also means "durable"; measured on this machine a commit costs ~0.3 ms.
  Write transactions begin with ``BEGIN IMMEDIATE`` so that two processes queue on the write lock
  instead of failing on a read-to-write lock upgrade; read transactions use ``BEGIN DEFERRED``.
  Within one process, writers queue in a group commit (below) instead of meeting SQLite's busy
  handler, which *sleeps* (1, 2, 5 ... 100 ms) rather than queueing and turned ~1 ms transactions
  into p99 of seconds under thread contention. Between processes (``verifier serve --processes``)
  the write transactions queue on an exclusive ``flock`` of ``<database>-writers.lock``
  (:class:`~edgetrust.onboarding.group_commit.WriterLock`), taken just before ``BEGIN IMMEDIATE``
  and released after the commit; SQLite's lock still decides, the file lock only orders.
* **PostgreSQL** (``postgresql://USER:PW@HOST:PORT/DB``; the psycopg 3 driver is chosen unless the
  URL names another), the scale-out store that verifier replicas share. READ COMMITTED; the few
  serialisation points are explicit (row locks, transaction-scoped advisory locks for the
  append-only sequences -- no table privilege beyond INSERT/SELECT is needed for them, so an
  operator may REVOKE UPDATE, DELETE on ``audit`` and ``revocations`` from the verifier's role; see
  :mod:`edgetrust.onboarding.store`). Serialization failures and deadlocks (SQLSTATE 40001 /
  40P01) are retried a few times. Schema creation takes an advisory lock, so replicas that start
  together do not race on ``CREATE TABLE``.

**Group commit** (both databases; :mod:`edgetrust.onboarding.group_commit`): the write transactions
that the threads of one process start at the same time run as one transaction, each in its own
savepoint, with one commit -- one disk flush -- for the batch; each writer returns only after
that commit, with its own result or error (a failed write is rolled back to its savepoint and
stored nothing). A write that fails on a PostgreSQL deadlock or serialisation failure is run
again on its own after the batch. On this machine a FULL commit waits ~0.3 ms for the disk when
the disk is quiet and ~5 ms under the shared load; with one commit per write, behind the one write
lock, that capped the writes at 1 / commit time (~200/s, two per onboarding) whatever the thread
count. Batches measured in the onboarding bench: ~4-7 writes per commit with 64 devices.

**Durability per write**: :meth:`Database.write` takes ``durable=False`` for records that only
need to survive until a later durable write reads them (the challenge nonces: see
:mod:`edgetrust.onboarding.nonces`). A batch of only such writes commits without waiting for the
disk (SQLite: ``synchronous = NORMAL`` for that commit, set before ``BEGIN``; PostgreSQL:
``SET LOCAL synchronous_commit = off``). Both logs are replayed as a prefix after a crash, so
any later durable commit makes every earlier commit durable too; a power cut can only lose such
writes that nothing durable has depended on yet. A process crash (SIGKILL) loses nothing: the
commit is in the operating system's cache (SQLite WAL) or the server (PostgreSQL).

**Hot statements**: the onboarding path (nonces, issuance, audit) runs a few hand-written
statements on the driver's cursor of the transaction's connection (:meth:`Database.cursor`,
:mod:`edgetrust.onboarding.statements`), which costs about a third of SQLAlchemy's execution
path per statement; everything else uses SQLAlchemy Core. The writers of a SQLite file keep one
connection between transactions (no pool check-out and check-in per transaction: ~15 us of the
~90 us a lone nonce insert costs here), replaced after any failure.

Errors: an unusable URL or driver is a :class:`~edgetrust.errors.ConfigError`; anything the
database does wrong is a :class:`~edgetrust.errors.StoreError` (unique-constraint violations a
:class:`~edgetrust.errors.DuplicateRecordError`). Passwords never appear in messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from edgetrust.errors import ConfigError, DuplicateRecordError, Error, StoreError
from edgetrust.onboarding import schema as s
from edgetrust.onboarding.group_commit import GroupCommit, WriteRequest, WriterLock

T = TypeVar("T")

SQLITE_SYNCHRONOUS_MODES = ("FULL", "EXTRA", "NORMAL")
_PG_RETRYABLE = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_PG_SCHEMA_LOCK = 0x6564_6765_7472  # pg_advisory_xact_lock keys: "edgetr" + n
#: name -> advisory lock key of the writers that :meth:`Database.serialize` orders
_PG_WRITER_LOCKS = {"audit": _PG_SCHEMA_LOCK + 1, "revocations": _PG_SCHEMA_LOCK + 2}
_PG_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_ATTEMPTS = 5
#: key of a transaction's :class:`TransactionState` in ``Connection.info`` (set only inside it)
_STATE_KEY = "edgetrust.transaction"


@dataclass(slots=True)
class TransactionState:
    """What one write transaction has learnt so far, so that later writes of a batch skip it.

    ``locks``: the advisory locks it holds (PostgreSQL; taking one again would cost a round trip).
    ``audit_head``: ``(seq, digest)`` of the last audit entry, known once this transaction has read
    or written it (it holds the audit writers' lock from then on, so nobody else can append).
    Restored when a write of a batch is rolled back to its savepoint.
    """

    cursor: Any
    locks: frozenset[str] = frozenset()
    audit_head: tuple[int, bytes] | None = None
    saved: list[tuple[frozenset[str], tuple[int, bytes] | None]] = field(default_factory=list)

    def save(self) -> None:
        self.saved.append((self.locks, self.audit_head))

    def restore(self) -> None:
        self.locks, self.audit_head = self.saved.pop()

    def forget(self) -> None:
        self.saved.pop()


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseTarget:
    """A parsed, normalised database URL."""

    url: URL

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.url.get_backend_name()

    @property
    def sqlite_path(self) -> Path | None:
        """The file of a SQLite database (``None`` for PostgreSQL and ``:memory:``)."""
        if self.dialect != "sqlite" or self.url.database in (None, "", ":memory:"):
            return None
        return Path(self.url.database or "")

    def redacted(self) -> str:
        """The URL with its password hidden, for messages and logs."""
        return self.url.render_as_string(hide_password=True)


def parse_database_url(url: str | URL) -> DatabaseTarget:
    """Parse a database URL, or raise :class:`ConfigError` (the message never echoes the URL)."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as e:
        raise ConfigError(
            "not a valid database URL",
            hint="use sqlite:///PATH/registry.db or postgresql://USER:PASSWORD@HOST:PORT/DB",
        ) from e
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {backend!r} (edgetrust supports sqlite and postgresql)"
        )
    if backend == "postgresql" and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return DatabaseTarget(url=parsed)


class Database:
    """An engine plus the transaction discipline of the registry (see the module docstring)."""

    def __init__(
        self,
        url: str | URL,
        *,
        sqlite_synchronous: str = "FULL",
        busy_timeout_ms: int = 10_000,
        pool_size: int = 8,
        echo: bool = False,
    ) -> None:
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS_MODES:
            raise ConfigError(
                f"sqlite synchronous mode must be one of {', '.join(SQLITE_SYNCHRONOUS_MODES)}, "
                f"not {sqlite_synchronous!r}"
            )
        self.target = parse_database_url(url)
        target = self.target
        self._synchronous = sqlite_synchronous
        self._group = GroupCommit(self._run_batch)
        path = target.sqlite_path
        #: queues the write transactions of the processes sharing a SQLite file (group_commit)
        self._writer_lock = None if path is None else WriterLock(Path(f"{path}-writers.lock"))
        self._writer_connection: Connection | None = None  # SQLite file: see _write_connection
        try:
            if target.dialect == "sqlite":
                self.engine = create_engine(
                    target.url,
                    echo=echo,
                    poolclass=StaticPool if target.sqlite_path is None else None,
                    connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
                )
                _configure_sqlite(
                    self.engine, synchronous=sqlite_synchronous, busy_timeout_ms=busy_timeout_ms
                )
            else:
                self.engine = create_engine(
                    target.url,
                    echo=echo,
                    pool_pre_ping=True,
                    pool_size=pool_size,
                    max_overflow=pool_size * 2,
                    connect_args={"connect_timeout": 10, "application_name": "edgetrust"},
                )
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as e:
            raise ConfigError(f"cannot use database {target.redacted()}: {e}") from e
        dbapi = self.engine.dialect.loaded_dbapi
        self._driver_error: type[Exception] = dbapi.Error
        self._driver_integrity: type[Exception] = dbapi.IntegrityError
        self._driver_unavailable: tuple[type[Exception], ...] = (
            dbapi.OperationalError,
            dbapi.InterfaceError,
        )

    @property
    def dialect(self) -> str:
        return self.target.dialect

    @property
    def url(self) -> str:
        return self.target.redacted()

    def dispose(self) -> None:
        if self._writer_connection is not None:
            self._writer_connection.close()
            self._writer_connection = None
        self.engine.dispose()
        if self._writer_lock is not None:
            self._writer_lock.close()

    @property
    def driver_integrity_error(self) -> type[Exception]:
        """The driver's IntegrityError (raised by statements run on :meth:`cursor`)."""
        return self._driver_integrity

    def stats(self) -> dict[str, int]:
        """Write batches committed by the group commit and the writes they carried."""
        return {"registry_batches": self._group.batches, "registry_writes": self._group.writes}

    # ------------------------------------------------------------------ schema

    def ensure_schema(self, *, create: bool) -> None:
        """Create the schema when missing (``create``), check its version; idempotent."""
        path = self.target.sqlite_path
        if path is not None and not create and not path.exists():
            raise ConfigError(
                f"no registry database at {path}",
                hint="pass --db URL or --config FILE, or set EDGETRUST_DB_URL",
            )
        if path is not None and not path.parent.is_dir():
            raise ConfigError(f"the directory of the registry database does not exist: {path}")

        def work(conn: Connection) -> None:
            if not conn.dialect.has_table(conn, "schema_meta"):
                if not create:
                    raise ConfigError(f"no edgetrust registry in database {self.url}")
                if self.dialect == "postgresql":  # replicas starting together: one creates
                    conn.execute(_PG_ADVISORY_LOCK, {"k": _PG_SCHEMA_LOCK})
                s.metadata.create_all(conn, checkfirst=True)
                for ddl in s.append_only_ddl(self.dialect):
                    conn.execute(text(ddl))
            meta = s.schema_meta
            version = conn.execute(
                select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar_one_or_none()
            if version is None and not create:
                raise ConfigError(f"no edgetrust registry in database {self.url} (no version)")
            if version is None:
                conn.execute(
                    meta.insert().values(key="schema_version", value=str(s.SCHEMA_VERSION))
                )
            elif int(version) > s.SCHEMA_VERSION:
                raise StoreError(
                    f"registry schema version {version} is newer than this edgetrust's "
                    f"({s.SCHEMA_VERSION})",
                    hint="upgrade edgetrust",
                )

        if create:
            self.write(work)
        else:
            self.read(work)

    # ------------------------------------------------------------------ transactions

    def write(self, work: Callable[[Connection], T], *, durable: bool = True) -> T:
        """Run ``work`` in a write transaction; return once that transaction has committed.

        ``work`` may run together with other threads' writes in one transaction (group commit,
        each in its own savepoint) and may be run again after a PostgreSQL deadlock or
        serialisation failure: it must do nothing but SQL on ``conn``. ``durable=False``: the
        commit need not wait for the disk (see the module documentation).
        """
        result: T = self._group.submit(work, durable=durable)
        return result

    def state(self, conn: Connection) -> TransactionState:
        """The state of the write transaction running on ``conn`` (only inside :meth:`write`)."""
        state: TransactionState = conn.info[_STATE_KEY]
        return state

    def cursor(self, conn: Connection) -> Any:
        """The driver's cursor of the write transaction on ``conn`` (hot statements only)."""
        return self.state(conn).cursor

    def _run_batch(self, batch: Sequence[WriteRequest]) -> None:
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        durable = any(request.durable for request in batch)
        outcomes: list[tuple[bool, Any]] = []
        for attempt in range(_ATTEMPTS):
            outcomes = []
            try:
                with self._transaction(durable=durable) as conn:
                    state = self.state(conn)
                    for request in batch:
                        outcomes.append(self._apply(conn, state, request.work))
                break
            except Exception as e:  # noqa: BLE001 - settled below, one translated error each
                if attempt + 1 < _ATTEMPTS and _retryable(e):
                    continue
                for request in batch:
                    request.fail(self._translated(e))
                return
        again: list[WriteRequest] = []
        for request, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                request.resolve(value)
            elif value is _RETRY:
                again.append(request)  # after the batch released its locks
            else:
                request.fail(value)
        for request in again:
            self._run_alone(request)

    def _apply(
        self, conn: Connection, state: TransactionState, work: Callable[[Connection], Any]
    ) -> tuple[bool, Any]:
        """Run one write of a batch in a savepoint: ``(True, result)`` or ``(False, error)``."""
        cursor = state.cursor
        cursor.execute("SAVEPOINT edgetrust_write")
        state.save()
        try:
            value = work(conn)
        except Exception as e:  # noqa: BLE001 - the write's own failure: undo it alone
            cursor.execute("ROLLBACK TO SAVEPOINT edgetrust_write")
            cursor.execute("RELEASE SAVEPOINT edgetrust_write")
            state.restore()
            return False, (_RETRY if _retryable(e) else self._translated(e))
        cursor.execute("RELEASE SAVEPOINT edgetrust_write")
        state.forget()
        return True, value

    def _run_alone(self, request: WriteRequest) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                with self._transaction(durable=request.durable) as conn:
                    result = request.work(conn)
            except Exception as e:  # noqa: BLE001 - settled: the caller gets it
                if attempt + 1 < _ATTEMPTS and _retryable(e):
                    continue
                request.fail(self._translated(e))
                return
            request.resolve(result)
            return

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool) -> Iterator[Connection]:
        """One write transaction (committed when the block ends without an exception)."""
        relax = not durable and self._relaxable()
        queued = self._writer_lock.held() if self._writer_lock else contextlib.nullcontext()
        with queued, self._write_connection() as conn:
            driver: Any = conn.connection.driver_connection
            if relax and self.dialect == "sqlite":  # may not change inside a transaction
                driver.execute("PRAGMA synchronous = NORMAL")
            try:
                with conn.begin():
                    cursor = driver.cursor()
                    if relax and self.dialect == "postgresql":
                        cursor.execute("SET LOCAL synchronous_commit = off")
                    conn.info[_STATE_KEY] = TransactionState(cursor=cursor)
                    try:
                        yield conn
                    finally:
                        conn.info.pop(_STATE_KEY, None)
            finally:
                if relax and self.dialect == "sqlite":
                    try:
                        driver.execute(f"PRAGMA synchronous = {self._synchronous}")
                    except self._driver_error:
                        conn.invalidate()  # never hand out a connection that skips fsync
                        raise

    @contextlib.contextmanager
    def _write_connection(self) -> Iterator[Connection]:
        """The connection for one write transaction. A SQLite file keeps one for its writers
        (only the group commit's leader writes, one at a time), which saves a pool check-out and
        check-in per transaction; it is dropped after any failure and replaced on the next
        write. PostgreSQL checks one out of the pool (pinged) each time."""
        if self.dialect != "sqlite" or self.target.sqlite_path is None:
            with self.engine.connect() as conn:
                yield conn
            return
        kept = self._writer_connection
        if kept is None or kept.closed or kept.invalidated:
            kept = self._writer_connection = self.engine.connect()
        conn = kept
        try:
            yield conn
        except BaseException:
            self._writer_connection = None
            conn.close()
            raise

    def _relaxable(self) -> bool:
        return self.dialect == "postgresql" or self._synchronous != "NORMAL"

    def _translated(self, error: Exception) -> Exception:
        """``error`` as what the caller of :meth:`write` sees (ours pass through unchanged)."""
        if isinstance(error, Error):
            return error
        if isinstance(error, sa_exc.SQLAlchemyError):
            return translate(error, self.url)
        if isinstance(error, self._driver_error):
            return self._translate_driver(error)
        return error

    def _translate_driver(self, error: Exception) -> StoreError:
        lines = str(error).strip().splitlines()
        summary = lines[0] if lines else type(error).__name__
        if isinstance(error, self._driver_integrity):
            return DuplicateRecordError(f"registry constraint violated: {summary}")
        if isinstance(error, self._driver_unavailable):
            return StoreError(
                f"registry database unavailable ({self.url}): {summary}",
                hint="check that the database server is running and the URL and credentials",
            )
        return StoreError(f"registry database error: {summary}")

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one read transaction (a consistent snapshot on SQLite)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(edgetrust_sqlite_begin="DEFERRED")
                with conn.begin():
                    return work(conn)
        except sa_exc.SQLAlchemyError as e:
            raise translate(e, self.url) from e
        except self._driver_error as e:
            raise self._translate_driver(e) from e

    def serialize(self, conn: Connection, name: str) -> None:
        """Order the store's writers of ``name`` (``audit``, ``revocations``) until this
        transaction ends: a PostgreSQL transaction-scoped advisory lock (readers are not
        affected), taken once per transaction. SQLite needs nothing: ``BEGIN IMMEDIATE``
        already holds the one write lock."""
        if self.dialect != "postgresql":
            return
        state = self.state(conn)
        if name not in state.locks:
            state.cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_WRITER_LOCKS[name],))
            state.locks = state.locks | {name}


def _configure_sqlite(engine: Engine, *, synchronous: str, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we begin transactions ourselves (below)
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("edgetrust_sqlite_begin", "IMMEDIATE")
        # On the driver: SQLAlchemy's execution path costs ~25 us more per transaction; a
        # failure (database locked past busy_timeout) is translated by write()/read().
        conn.connection.driver_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]


#: marks a write of a batch to run again on its own (a PostgreSQL deadlock or serialisation failure)
_RETRY = object()


def _retryable(error: BaseException) -> bool:
    """A PostgreSQL deadlock or serialisation failure, from SQLAlchemy or from the driver."""
    cause = getattr(error, "orig", None) or error
    return getattr(cause, "sqlstate", None) in _PG_RETRYABLE


def translate(error: sa_exc.SQLAlchemyError, url: str) -> StoreError:
    """A SQLAlchemy/driver error as a StoreError with a one-line summary (no SQL, no secrets)."""
    orig = getattr(error, "orig", None)
    lines = str(orig if orig is not None else error).strip().splitlines()
    summary = lines[0] if lines else type(error).__name__
    if isinstance(error, sa_exc.IntegrityError):
        return DuplicateRecordError(f"registry constraint violated: {summary}")
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return StoreError(
            f"registry database unavailable ({url}): {summary}",
            hint="check that the database server is running and the URL and credentials",
        )
    return StoreError(f"registry database error: {summary}")
