"""Fixtures for the onboarding tests: the registry store on SQLite AND on a real PostgreSQL.

``db_url`` (and ``store`` built on it) is parametrized over ``sqlite`` and ``postgresql``. The
PostgreSQL variant never skips: the session starts a throw-away cluster (tests/pgserver.py) or
uses ``EDGETRUST_TEST_PG_URL``, and if neither works every PostgreSQL test fails with the reason.
The PostgreSQL tests share one database holding the schema; each test starts with every table
emptied (TRUNCATE with triggers off: ~20 ms, where cloning a database costs ~250 ms). Tests that
need a database without the schema use ``pg_server.database()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from edgetrust.onboarding import schema
from edgetrust.onboarding.store import SqlRegistryStore
from tests.pgserver import PostgresServer

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def pg_registry(pg_server: PostgresServer) -> Iterator[str]:
    """One database holding the registry schema for the whole session (its SQLAlchemy URL)."""
    url = pg_server.create_database()
    SqlRegistryStore(url).close()
    yield url
    pg_server.drop_database(url)


def _empty_tables(pg_server: PostgresServer, url: str) -> None:
    tables = ", ".join(t.name for t in schema.metadata.sorted_tables if t.name != "schema_meta")
    with psycopg.connect(pg_server.libpq_url(url), autocommit=True) as conn:
        # Replica mode switches the append-only triggers off for this session only.
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"TRUNCATE {tables}")


@pytest.fixture(scope="session")
def pg_store(pg_registry: str) -> Iterator[SqlRegistryStore]:
    """One store on the session's PostgreSQL registry (its engine is reused by every test)."""
    with SqlRegistryStore(pg_registry) as opened:
        yield opened


@pytest.fixture
def pg_url(pg_server: PostgresServer, pg_registry: str) -> str:
    """The session's PostgreSQL registry, emptied for this test."""
    _empty_tables(pg_server, pg_registry)
    return pg_registry


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty registry database, once per backend."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database without the registry schema, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    with server.database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[SqlRegistryStore]:
    """An empty registry store, once per backend."""
    if request.param == "sqlite":
        with SqlRegistryStore(request.getfixturevalue("sqlite_url")) as opened:
            yield opened
        return
    request.getfixturevalue("pg_url")  # empties the tables
    yield request.getfixturevalue("pg_store")
