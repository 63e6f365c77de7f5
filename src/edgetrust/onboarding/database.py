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
  Within one process, writers first take a ``threading.Lock``: SQLite's busy handler *sleeps*
  (1, 2, 5 ... 100 ms) rather than queueing, which turned ~1 ms transactions into p99 of seconds
  under thread contention; the lock makes this process's writers wake as soon as the previous one
  commits. Other processes still meet the busy handler, rarely.
* **PostgreSQL** (``postgresql://USER:PW@HOST:PORT/DB``; the psycopg 3 driver is chosen unless the
  URL names another), the scale-out store that verifier replicas share. READ COMMITTED; the few
  serialisation points are explicit (row locks, transaction-scoped advisory locks for the
  append-only sequences -- no table privilege beyond INSERT/SELECT is needed for them, so an
  operator may REVOKE UPDATE, DELETE on ``audit`` and ``revocations`` from the verifier's role; see
  :mod:`edgetrust.onboarding.store`). Serialization failures and deadlocks (SQLSTATE 40001 /
  40P01) are retried a few times. Schema creation takes an advisory lock, so replicas that start
  together do not race on ``CREATE TABLE``.

Errors: an unusable URL or driver is a :class:`~edgetrust.errors.ConfigError`; anything the
database does wrong is a :class:`~edgetrust.errors.StoreError` (unique-constraint violations a
:class:`~edgetrust.errors.DuplicateRecordError`). Passwords never appear in messages.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from edgetrust.errors import ConfigError, DuplicateRecordError, StoreError
from edgetrust.onboarding import schema as s

T = TypeVar("T")

SQLITE_SYNCHRONOUS_MODES = ("FULL", "EXTRA", "NORMAL")
_PG_RETRYABLE = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_PG_SCHEMA_LOCK = 0x6564_6765_7472  # pg_advisory_xact_lock keys: "edgetr" + n
#: name -> advisory lock key of the writers that :meth:`Database.serialize` orders
_PG_WRITER_LOCKS = {"audit": _PG_SCHEMA_LOCK + 1, "revocations": _PG_SCHEMA_LOCK + 2}
_PG_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_ATTEMPTS = 5


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
        self._write_lock: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if target.dialect == "sqlite" else contextlib.nullcontext()
        )
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

    @property
    def dialect(self) -> str:
        return self.target.dialect

    @property
    def url(self) -> str:
        return self.target.redacted()

    def dispose(self) -> None:
        self.engine.dispose()

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

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction (committed when it returns), with retries."""
        for attempt in range(_ATTEMPTS):
            try:
                with self._write_lock, self.engine.begin() as conn:
                    return work(conn)
            except sa_exc.DBAPIError as e:
                if attempt + 1 < _ATTEMPTS and _retryable(e):
                    continue
                raise translate(e, self.url) from e
            except sa_exc.SQLAlchemyError as e:
                raise translate(e, self.url) from e
        raise StoreError("transaction retries exhausted")  # pragma: no cover - loop returns

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one read transaction (a consistent snapshot on SQLite)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(edgetrust_sqlite_begin="DEFERRED")
                with conn.begin():
                    return work(conn)
        except sa_exc.SQLAlchemyError as e:
            raise translate(e, self.url) from e

    def serialize(self, conn: Connection, name: str) -> None:
        """Order the store's writers of ``name`` (``audit``, ``revocations``) until this
        transaction ends: a PostgreSQL transaction-scoped advisory lock (readers are not
        affected). SQLite needs nothing: ``BEGIN IMMEDIATE`` already holds the one write lock."""
        if self.dialect == "postgresql":
            conn.execute(_PG_ADVISORY_LOCK, {"k": _PG_WRITER_LOCKS[name]})


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
        conn.exec_driver_sql(f"BEGIN {mode}")


def _retryable(error: sa_exc.DBAPIError) -> bool:
    return getattr(getattr(error, "orig", None), "sqlstate", None) in _PG_RETRYABLE


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
