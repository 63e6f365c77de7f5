"""Crash safety at the store level: a writer SIGKILLed in the middle of a stream of issuances.

The child prints a serial only after ``record_issuance`` returned (committed). After the kill, the
reopened registry must hold every reported record, at most one more (committed, killed before it
could print), a gapless audit chain that verifies and matches the records one to one, a gapless
revocation feed, and (SQLite) a database that passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from edgetrust.onboarding.store import SqlRegistryStore

REPO = Path(__file__).resolve().parents[3]
REPORTED = 60


def _run_and_kill(url: str) -> tuple[set[int], set[int]]:
    """Start the writer, SIGKILL it after REPORTED commits; (issued, revoked device numbers)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.onboarding.registry_workers", "issue-forever", url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    issued: set[int] = set()
    revoked: set[int] = set()
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    try:
        while len(issued) < REPORTED:
            if time.monotonic() > deadline or not selector.select(timeout=5):
                raise AssertionError(f"writer stalled: {proc.stderr.read() if proc.stderr else ''}")
            line = proc.stdout.readline()
            if not line:
                stderr = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"writer died on its own: {stderr}")
            kind, number = line.split()
            (issued if kind == "issued" else revoked).add(int(number))
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: most likely inside a transaction
    finally:
        selector.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return issued, revoked


def test_sigkilled_writer_loses_no_committed_record(db_url: str) -> None:
    SqlRegistryStore(db_url).close()  # schema exists before the writer starts
    issued, revoked = _run_and_kill(db_url)

    with SqlRegistryStore(db_url) as store:
        if store.dialect == "sqlite":
            with store.database.engine.connect() as conn:
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        devices = store.list_devices()
        serials = {c.serial for d in devices for c in store.certificates_of(d.ueid)}
        assert issued <= serials, f"committed records lost: {sorted(issued - serials)}"
        assert len(serials - issued) <= 1  # committed, then killed before reporting it
        assert serials == set(range(1, len(serials) + 1))

        chain = store.verify_audit_chain()  # gapless 1..n and every digest chains
        entries = store.audit_since(0)
        issued_in_audit = [
            int(e.detail["serial"], 16) for e in entries if e.action == "certificate.issued"
        ]
        assert sorted(issued_in_audit) == sorted(serials)  # one audit entry per record, no more
        revoked_in_audit = [e for e in entries if e.action == "device.revoked"]
        feed = store.revocations_since(0)
        assert [e.seq for e in feed] == list(range(1, len(feed) + 1))
        assert len(feed) == len(revoked_in_audit)
        assert chain.length == len(issued_in_audit) + len(revoked_in_audit)
        revoked_devices = {int.from_bytes(e.ueid[1:], "big") for e in feed}
        assert revoked <= revoked_devices
        assert {
            int.from_bytes(d.ueid[1:], "big") for d in devices if d.revoked_at
        } == revoked_devices

        # The registry keeps working after the crash: the next write continues both sequences.
        active = next(d for d in devices if d.revoked_at is None)
        event = store.revoke_device(
            active.ueid, reason="after crash", actor="t", now=entries[-1].at
        )
        assert event.seq == len(feed) + 1
        assert store.verify_audit_chain().length == chain.length + 1
