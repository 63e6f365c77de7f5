"""Opening a registry: URLs, schema creation and versions, SQLite settings, connection errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from edgetrust.errors import ConfigError, StoreError
from edgetrust.onboarding.database import parse_database_url
from edgetrust.onboarding.store import SqlRegistryStore
from tests.pgserver import PostgresServer
from tests.unit.onboarding.registry_data import NOW, certificate, device


@pytest.mark.parametrize("url", ["", "not a url", "sqlite//x", "://nothing"])
def test_malformed_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="not a valid database URL"):
        SqlRegistryStore(url)


def test_unsupported_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        SqlRegistryStore("mysql://u:p@localhost/db")


def test_missing_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot use database"):
        SqlRegistryStore("postgresql+nosuchdriver://u@localhost/db")


def test_postgres_urls_get_the_psycopg3_driver() -> None:
    assert parse_database_url("postgresql://u:pw@h/db").url.drivername == "postgresql+psycopg"
    assert parse_database_url("postgresql+psycopg://u@h/db").url.drivername == "postgresql+psycopg"
    assert "pw" not in parse_database_url("postgresql://u:pw@h/db").redacted()


def test_bad_sqlite_synchronous_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SqlRegistryStore(f"sqlite:///{tmp_path}/r.db", sqlite_synchronous="OFF")


def test_missing_sqlite_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no registry database at"):
        SqlRegistryStore(f"sqlite:///{tmp_path}/absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        SqlRegistryStore(f"sqlite:///{tmp_path}/no/such/dir/r.db")


def test_empty_sqlite_file_without_create(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(ConfigError, match="no edgetrust registry"):
        SqlRegistryStore(f"sqlite:///{tmp_path}/empty.db", create=False)


def test_empty_postgres_database_without_create(pg_server: PostgresServer) -> None:
    with pg_server.database() as url, pytest.raises(ConfigError, match="no edgetrust registry"):
        SqlRegistryStore(url, create=False)


def test_schema_creation_is_idempotent_and_keeps_data(empty_db_url: str) -> None:
    with SqlRegistryStore(empty_db_url) as store:
        store.record_issuance(device=device(1), certificate=certificate(1), actor="v", now=NOW)
    with (
        SqlRegistryStore(empty_db_url) as again,
        SqlRegistryStore(empty_db_url, create=False) as reader,
    ):
        assert len(again.list_devices()) == 1
        assert len(reader.list_devices()) == 1
        assert reader.verify_audit_chain().length == 1


def test_fresh_postgres_database_gets_schema_and_triggers(pg_server: PostgresServer) -> None:
    with pg_server.database() as url, SqlRegistryStore(url) as store:
        with store.database.engine.connect() as conn:
            triggers = (
                conn.execute(
                    text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname")
                )
                .scalars()
                .all()
            )
        assert triggers == [
            "audit_append_only",
            "audit_no_truncate",
            "revocations_append_only",
            "revocations_no_truncate",
        ]


def test_newer_schema_version_is_refused(empty_db_url: str) -> None:
    with SqlRegistryStore(empty_db_url) as store, store.database.engine.begin() as conn:
        conn.execute(text("UPDATE schema_meta SET value = '999' WHERE key = 'schema_version'"))
    with pytest.raises(StoreError, match="schema version 999 is newer"):
        SqlRegistryStore(empty_db_url)
    with pytest.raises(StoreError, match="schema version 999 is newer"):
        SqlRegistryStore(empty_db_url, create=False)


def test_sqlite_pragmas(tmp_path: Path) -> None:
    with (
        SqlRegistryStore(f"sqlite:///{tmp_path}/r.db") as store,
        store.database.engine.connect() as conn,
    ):
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
    normal = SqlRegistryStore(f"sqlite:///{tmp_path}/r.db", sqlite_synchronous="NORMAL")
    with normal, normal.database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1


def test_in_memory_sqlite_works() -> None:
    with SqlRegistryStore("sqlite://") as store:
        store.record_issuance(device=device(1), certificate=certificate(1), actor="v", now=NOW)
        assert len(store.list_devices()) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_postgres_is_a_store_error() -> None:
    url = f"postgresql://nobody:secret-pw@127.0.0.1:{_closed_port()}/registry"
    with pytest.raises(StoreError, match="registry database unavailable") as info:
        SqlRegistryStore(url)
    assert "secret-pw" not in str(info.value)
    assert info.value.hint


def test_wrong_password_is_a_store_error(pg_server: PostgresServer) -> None:
    url = make_url(pg_server.admin_url).set(password="wrong").render_as_string(False)
    with pytest.raises(StoreError, match="unavailable"):
        SqlRegistryStore(url)
