"""Two processes against one database (a SQLite file, or PostgreSQL as two verifier replicas).

Both race for the same nonces in lock step, half through ``consume_nonce`` and half through
``record_issuance(nonce=...)``, registering the same few devices concurrently, append to the
audit log at the same moments, then revoke devices and certificates at the same moments.
Afterwards: every nonce was won exactly once, every won issuance is in the database (nothing
lost), nothing else is (no double issuance), the revocation feed is gapless, and the audit chain
is gapless and verifies.
"""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from typing import Any

from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding import registry_workers
from tests.unit.onboarding.registry_data import NOW

NONCES = 60


def test_two_processes_never_share_a_nonce_or_lose_a_record(db_url: str) -> None:
    nonces = [i.to_bytes(4, "big") * 8 for i in range(NONCES)]
    with SqlRegistryStore(db_url) as store:
        for value in nonces:
            store.issue_nonce(value=value, session=None, now=NOW, ttl=timedelta(minutes=5))

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=registry_workers.race, args=(db_url, w, nonces, barrier, queue))
        for w in (0, 1)
    ]
    for process in workers:
        process.start()
    reports: dict[int, Any] = dict(queue.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=30)
        assert process.exitcode == 0
    results: list[dict[str, Any]] = [reports[0], reports[1]]
    assert [r.get("error") for r in results] == [None, None]

    issued = [set(r["issued"]) for r in results]
    consumed = [set(r["consumed"]) for r in results]
    won = [issued[w] | consumed[w] for w in (0, 1)]
    assert won[0].isdisjoint(won[1]), "a nonce was accepted twice"
    assert won[0] | won[1] == set(range(NONCES)), "a nonce was lost"
    assert sum(r["refused"] for r in results) == NONCES  # the loser of each race was refused
    # Both workers really raced (each won some): with 60 lock-step races a sweep is implausible.
    assert len(won[0]) > NONCES // 10
    assert len(won[1]) > NONCES // 10

    with SqlRegistryStore(db_url, create=False) as store:
        certs = [c for d in store.list_devices() for c in store.certificates_of(d.ueid)]
        winners = {i: w for w in (0, 1) for i in issued[w]}
        expected = {1 + i * 2 + w for i, w in winners.items()}
        assert {c.serial for c in certs} == expected  # nothing lost, nothing doubled
        assert len(certs) == len(expected)
        assert {c.nonce for c in certs} == {nonces[i] for i in winners}
        assert len(store.list_devices()) == registry_workers.DEVICES
        # Revocations appended at once by both: the feed is gapless and every event was seen.
        head = store.revocation_head()
        assert [e.seq for e in store.revocations_since(0)] == list(range(1, head + 1))
        assert set(results[0]["feed"]) | set(results[1]["feed"]) == set(range(1, head + 1))
        assert all(d.revoked_at is not None for d in store.list_devices())
        # Audit: issuances + two concurrent appends per odd step + one per revocation event.
        chain = store.verify_audit_chain()
        assert chain.length == len(expected) + NONCES + head
        actions = [a.action for a in store.audit_since(0)]
        assert actions.count("certificate.issued") == len(expected)
        assert actions.count("race.step") == NONCES
