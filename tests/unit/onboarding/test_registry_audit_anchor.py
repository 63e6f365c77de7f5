"""``edgetrust registry audit --head`` / ``--verify --expect-head``: anchoring the audit log.

Run through the real entry point on SQLite and PostgreSQL. The log is truncated or rewritten
directly in the database, the append-only triggers switched off first (what an operator with the
database's owner role could do).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from edgetrust.cli.main import cli as main_cli
from edgetrust.cli.reporting import run_guarded
from edgetrust.onboarding.ledger import AUDIT_GENESIS, entry_digest
from edgetrust.onboarding.records import AuditEvent
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_guarded(main_cli, ["registry", "audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _append(store: SqlRegistryStore, first: int, count: int) -> None:
    for n in range(first, first + count):
        event = AuditEvent(actor="verifier", action="x.y", subject=f"device:{n}", detail={"n": n})
        store.append_audit(event, now=NOW + timedelta(seconds=n))


def _tamper(
    store: SqlRegistryStore, statement: str, rows: list[dict[str, object]] | None = None
) -> None:
    """Run ``statement`` past the append-only triggers (for this transaction only: the
    PostgreSQL registry is shared by the session's tests; each SQLite one is the test's own)."""
    with store.database.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_no_delete"))
        conn.execute(text(statement), rows or {})


def _rechain_from(store: SqlRegistryStore, seq: int, actor: str) -> None:
    """Rewrite the actor of every entry from ``seq`` on and recompute their digests."""
    entries = store.audit_since(0)
    previous = entries[seq - 2].digest if seq > 1 else AUDIT_GENESIS
    updates = []
    for e in entries[seq - 1 :]:
        previous = entry_digest(previous, dataclasses.replace(e, actor=actor))
        updates.append({"actor": actor, "digest": previous.hex(), "seq": e.seq})
    _tamper(store, "UPDATE audit SET actor = :actor, digest = :digest WHERE seq = :seq", updates)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlRegistryStore]:
    """An empty registry at ``db_url`` (the URL the commands get), once per backend."""
    with SqlRegistryStore(db_url) as opened:
        yield opened


@pytest.fixture
def head(capsys: pytest.CaptureFixture[str], store: SqlRegistryStore, db_url: str) -> str:
    """Five entries; their head, as ``audit --head`` prints it."""
    _append(store, 1, 5)
    code, out, err = _run(capsys, "--head", "--db", db_url)
    assert code == 0, err
    return out.strip()


def test_head_is_the_verified_head(
    capsys: pytest.CaptureFixture[str], store: SqlRegistryStore, db_url: str, head: str
) -> None:
    last = store.audit_since(4)[0]
    assert head == f"5:{last.digest.hex()}"
    code, out, _ = _run(capsys, "--head", "--json", "--db", db_url)
    assert code == 0
    assert json.loads(out) == {"seq": 5, "digest": last.digest.hex(), "head": head}


def test_head_of_an_empty_log(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    SqlRegistryStore(db_url).close()
    code, out, _ = _run(capsys, "--head", "--db", db_url)
    assert (code, out) == (0, f"0:{'00' * 32}\n")


def test_recorded_head_passes_and_keeps_passing_as_the_log_grows(
    capsys: pytest.CaptureFixture[str], store: SqlRegistryStore, db_url: str, head: str
) -> None:
    code, out, _ = _run(capsys, "--verify", "--expect-head", head, "--db", db_url)
    assert code == 0
    assert out.splitlines()[:2] == [
        f"audit chain verified: 5 entries, head {head.split(':')[1]}",
        f"recorded head {head} is still in the chain",
    ]
    _append(store, 6, 3)
    code, out, err = _run(capsys, "--expect-head", head, "--json", "--db", db_url)
    assert code == 0, err
    data = json.loads(out)
    assert data["chain"]["length"] == 8
    assert data["chain"]["expected_head"] == head
    assert len(data["entries"]) == 8


def test_truncated_log_exits_1(
    capsys: pytest.CaptureFixture[str], store: SqlRegistryStore, db_url: str, head: str
) -> None:
    _tamper(store, "DELETE FROM audit WHERE seq > 3")
    assert _run(capsys, "--verify", "--db", db_url)[0] == 0  # the chain alone cannot tell
    code, out, err = _run(capsys, "--verify", "--expect-head", head, "--db", db_url)
    assert code == 1
    assert out == ""
    first, hint = err.splitlines()
    assert first == f"error: audit log truncated: it ends at seq 3, before the recorded head {head}"
    assert hint.startswith("hint: ")


def test_truncated_and_regrown_log_exits_1(
    capsys: pytest.CaptureFixture[str], store: SqlRegistryStore, db_url: str, head: str
) -> None:
    _tamper(store, "DELETE FROM audit WHERE seq > 3")
    _append(store, 100, 4)  # seq 4..7, another history
    code, _, err = _run(capsys, "--expect-head", head, "--db", db_url)
    assert code == 1
    assert err.startswith("error: audit log rewritten: seq 5 has digest ")


def test_rewritten_and_rechained_log_exits_1(
    capsys: pytest.CaptureFixture[str], store: SqlRegistryStore, db_url: str, head: str
) -> None:
    _rechain_from(store, 2, "mallory")
    assert _run(capsys, "--verify", "--db", db_url)[0] == 0  # consistent after the rewrite
    code, out, err = _run(capsys, "--verify", "--expect-head", head, "--json", "--db", db_url)
    assert code == 1
    assert out == ""
    assert err.startswith("error: audit log rewritten: seq 5 has digest ")
    assert f"not the recorded {head.split(':')[1]}" in err


def test_rewritten_row_breaks_the_chain_exits_3(
    capsys: pytest.CaptureFixture[str], store: SqlRegistryStore, db_url: str, head: str
) -> None:
    _tamper(store, "UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    code, _, err = _run(capsys, "--expect-head", head, "--db", db_url)
    assert code == 3  # broken inside: as plain --verify reports it
    assert err == "error: audit log altered: digest mismatch at seq 2\n"


@pytest.mark.parametrize("bad", ["5", "5:abc", "five:" + "00" * 32])
def test_malformed_expected_head_exits_2(
    capsys: pytest.CaptureFixture[str], store: SqlRegistryStore, db_url: str, bad: str
) -> None:
    code, out, err = _run(capsys, "--verify", "--expect-head", bad, "--db", db_url)
    assert code == 2
    assert out == ""
    assert "SEQ:HASH" in err or "64 hex digits" in err
