"""Shared pytest configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgserver import PostgresServer, PostgresUnavailableError

VECTORS = Path(__file__).resolve().parent / "vectors"


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    return VECTORS


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL cluster for the whole test session (unit and integration)."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailableError as e:
        pytest.fail(f"PostgreSQL for the registry tests is unavailable: {e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
