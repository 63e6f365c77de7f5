"""The test PostgreSQL helper: binary discovery (Debian layout and overrides), clear failures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.pgserver import (
    REPO,
    PostgresServer,
    PostgresUnavailableError,
    find_bindir,
)

PG_SH = REPO / "scripts" / "pg.sh"


def _fake_server(bindir: Path, *tools: str) -> None:
    bindir.mkdir(parents=True)
    for tool in tools:
        (bindir / tool).write_text("#!/bin/sh\n")
        (bindir / tool).chmod(0o755)


def _bindir(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PG_SH), "bindir"], env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_debian_layout_newest_complete_version_wins(tmp_path: Path) -> None:
    for version in ("9.6", "13", "15"):
        _fake_server(tmp_path / version / "bin", "initdb", "postgres")
    _fake_server(tmp_path / "16" / "bin", "initdb")  # half-installed: no server binary
    result = _bindir({"EDGETRUST_PG_LIBDIR": str(tmp_path)})
    assert result.returncode == 0
    assert result.stdout.strip() == str(tmp_path / "15" / "bin")


def test_explicit_bindir_override(tmp_path: Path) -> None:
    _fake_server(tmp_path / "pg" / "bin", "initdb", "postgres")
    result = _bindir({"EDGETRUST_PG_BINDIR": str(tmp_path / "pg" / "bin")})
    assert result.stdout.strip() == str(tmp_path / "pg" / "bin")
    broken = _bindir({"EDGETRUST_PG_BINDIR": str(tmp_path)})
    assert broken.returncode == 1
    assert "has no initdb/postgres" in broken.stderr


def test_no_server_found(tmp_path: Path) -> None:
    assert _bindir({"EDGETRUST_PG_LIBDIR": str(tmp_path / "none")}).returncode == 1


def test_this_machine_has_a_server() -> None:
    """What setup.sh --dev guarantees: the binaries the session fixture starts are there."""
    bindir = find_bindir()
    assert (bindir / "initdb").is_file()
    assert (bindir / "postgres").is_file()


def test_find_bindir_failure_is_actionable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGETRUST_PG_LIBDIR", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent:/usr/bin:/bin")
    with pytest.raises(PostgresUnavailableError, match=r"scripts/pg\.sh install"):
        find_bindir()


def test_unreachable_external_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGETRUST_TEST_PG_URL", "postgresql://u@127.0.0.1:1/x")
    with pytest.raises(PostgresUnavailableError, match="EDGETRUST_TEST_PG_URL is set but"):
        PostgresServer.start()


def test_session_server_listens_on_loopback_only(pg_server: PostgresServer) -> None:
    assert "@127.0.0.1:" in pg_server.admin_url
