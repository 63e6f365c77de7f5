"""``edgetrust registry``: list, show, revoke, revoke-cert, audit, revocations; exit codes.

Run through the real entry point (``run_guarded``), so exit codes and one-line errors are what a
user sees. Every command runs against SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from edgetrust.cli.main import cli as main_cli
from edgetrust.cli.reporting import run_guarded
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW, certificate, device, ueid


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_guarded(main_cli, ["registry", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def seeded(db_url: str) -> str:
    """Devices 1 (certs 0xa1, 0xa2) and 2 (cert 0xb1, product cam)."""
    with SqlRegistryStore(db_url) as store:
        store.record_issuance(device=device(1), certificate=certificate(0xA1), actor="v", now=NOW)
        store.record_issuance(device=device(1), certificate=certificate(0xA2), actor="v", now=NOW)
        store.record_issuance(
            device=device(2, product="cam"), certificate=certificate(0xB1, n=2), actor="v", now=NOW
        )
    return db_url


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_list(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, _ = _run(capsys, "list", "--db", seeded)
    assert code == 0
    assert ueid(1).hex() in out
    assert "active" in out
    data = _json(capsys, "list", "--db", seeded, "--product", "cam")
    assert [d["ueid"] for d in data] == [ueid(2).hex()]
    assert data[0]["status"] == "active"


def test_show(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, _ = _run(capsys, "show", ueid(1).hex(), "--db", seeded)
    assert code == 0
    assert "certificates (2)" in out
    assert "a1" in out
    data = _json(capsys, "show", "0x" + ueid(1).hex().upper(), "--db", seeded)
    assert [c["serial"] for c in data["certificates"]] == ["a1", "a2"]
    assert data["device_id_pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_show_unknown_device_exits_1(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, err = _run(capsys, "show", ueid(9).hex(), "--db", seeded)
    assert code == 1
    assert out == ""
    assert err == f"error: no device {ueid(9).hex()} in the registry\n"


def test_revoke_then_list_audit_and_feed(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    event = _json(
        capsys, "revoke", ueid(1).hex(), "--reason", "stolen", "--actor", "alice", "--db", seeded
    )
    assert event["seq"] == 1
    assert event["kind"] == "device"
    assert event["reason"] == "stolen"
    assert event["actor"] == "alice"
    code, out, _ = _run(capsys, "revoke", ueid(1).hex(), "--db", seeded)  # idempotent
    assert code == 0
    assert "feed seq 1" in out
    revoked = _json(capsys, "list", "--status", "revoked", "--db", seeded)
    assert [d["ueid"] for d in revoked] == [ueid(1).hex()]
    entries = _json(capsys, "audit", "--db", seeded, "--since", "3")
    assert [(e["seq"], e["action"], e["actor"]) for e in entries] == [
        (4, "device.revoked", "alice")
    ]
    assert entries[0]["detail"]["certificates"] == 2
    feed = _json(capsys, "revocations", "--db", seeded)
    assert [(e["seq"], e["ueid"]) for e in feed] == [(1, ueid(1).hex())]


def test_revoke_default_actor_is_the_login(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    event = _json(capsys, "revoke", ueid(2).hex(), "--db", seeded)
    assert event["actor"].startswith("cli")


def test_revoke_unknown_device_exits_1(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, _, err = _run(capsys, "revoke", ueid(9).hex(), "--db", seeded)
    assert code == 1
    assert err.startswith(f"error: no device {ueid(9).hex()}")
    assert _json(capsys, "revocations", "--db", seeded) == []


def test_revoke_cert(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    event = _json(capsys, "revoke-cert", "A2", "--reason", "key leaked", "--db", seeded)
    assert (event["kind"], event["serial"], event["ueid"]) == ("certificate", "a2", ueid(1).hex())
    code, _, err = _run(capsys, "revoke-cert", "ff", "--db", seeded)
    assert code == 1
    assert "no certificate ff" in err


def test_audit_verify(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, _ = _run(capsys, "audit", "--verify", "--db", seeded)
    assert code == 0
    assert out.startswith("audit chain verified: 3 entries")
    data = _json(capsys, "audit", "--verify", "--limit", "1", "--db", seeded)
    assert data["chain"]["length"] == 3
    assert [e["seq"] for e in data["entries"]] == [1]


@pytest.mark.parametrize("bad", ["xyz", "", "0x"])
def test_bad_ueid_exits_2(capsys: pytest.CaptureFixture[str], seeded: str, bad: str) -> None:
    code, _, err = _run(capsys, "show", bad, "--db", seeded)
    assert code == 2
    assert "UEID" in err


def test_bad_serial_exits_2(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, _, err = _run(capsys, "revoke-cert", "0", "--db", seeded)
    assert code == 2
    assert "SERIAL" in err


# ----------------------------------------------------------------- which database, and errors


@pytest.mark.parametrize("url", ["not a url://x", "mysql://u@h/db"])
def test_bad_url_exits_2(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, err = _run(capsys, "list", "--db", url)
    assert code == 2
    assert out == ""
    assert err.startswith("error: --db: ")
    assert len(err.strip().splitlines()) <= 2  # message (+ hint), never a traceback


def test_missing_registry_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "list", "--db", str(tmp_path / "none.db"))
    assert code == 2
    assert "no registry database at" in err
    assert not (tmp_path / "none.db").exists()


def test_db_and_config_together_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "verifier.toml"
    config.write_text("")
    code, _, err = _run(capsys, "list", "--db", "x.db", "--config", str(config))
    assert code == 2
    assert "either --db or --config" in err


def test_unreachable_database_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = _run(capsys, "list", "--db", f"postgresql://u:secretpw@127.0.0.1:{port}/x")
    assert code == 3
    assert "registry database unavailable" in err
    assert "secretpw" not in err


def test_config_file_names_the_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with SqlRegistryStore(f"sqlite:///{tmp_path / 'data.db'}") as store:
        store.record_issuance(device=device(1), certificate=certificate(1), actor="v", now=NOW)
    config = tmp_path / "verifier.toml"
    config.write_text('[registry]\nurl = "data.db"\n')
    assert len(_json(capsys, "list", "--config", str(config))) == 1


def test_environment_and_cwd_defaults(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGETRUST_DB_URL", raising=False)
    monkeypatch.delenv("EDGETRUST_VERIFIER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "list")
    assert code == 2
    assert f"no registry database at {tmp_path.resolve() / 'registry.db'}" in err
    with SqlRegistryStore(f"sqlite:///{tmp_path / 'registry.db'}") as store:
        store.record_issuance(device=device(1), certificate=certificate(1), actor="v", now=NOW)
    assert len(_json(capsys, "list")) == 1  # ./registry.db
    monkeypatch.setenv("EDGETRUST_DB_URL", str(tmp_path / "elsewhere.db"))
    code, _, err = _run(capsys, "list")
    assert code == 2
    assert "elsewhere.db" in err
