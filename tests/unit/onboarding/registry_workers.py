"""Code that runs in child processes for the concurrency and crash tests of the registry store.

``python -m tests.unit.onboarding.registry_workers issue-forever URL`` records issuances (and a
revocation every tenth device) until it is killed, printing each serial number on stdout only
after ``record_issuance`` has returned, i.e. after the commit.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from multiprocessing import Queue
from multiprocessing.synchronize import Barrier

from edgetrust.errors import NonceReplayError
from edgetrust.onboarding.records import AuditEvent, NonceClaim
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW, certificate, device, ueid

DEVICES = 7  # few devices, so that both workers race on registering and locking the same rows


def race(
    url: str, worker: int, nonces: list[bytes], barrier: Barrier, results: Queue[object]
) -> None:
    """Race for every nonce (half with an issuance), append and revoke at once; report."""
    try:
        results.put((worker, _race(url, worker, nonces, barrier)))
    except BaseException as e:  # noqa: BLE001 - report anything, free the other worker at once
        barrier.abort()
        results.put((worker, {"error": f"{type(e).__name__}: {e}"}))


def _race(url: str, worker: int, nonces: list[bytes], barrier: Barrier) -> dict[str, object]:
    won_issuance: list[int] = []
    won_consume: list[int] = []
    refused = 0
    with SqlRegistryStore(url) as store:
        for i, value in enumerate(nonces):
            # Both processes go for the same nonce at the same moment, every time: a real race
            # on one row, not a leader consuming everything before the follower arrives.
            barrier.wait(timeout=60)
            try:
                if i % 2 == 0:
                    n = i % DEVICES + 1
                    store.record_issuance(
                        device=device(n),
                        # distinct serials per worker: only the nonce may stop a double issuance
                        certificate=certificate(1 + i * 2 + worker, n=n),
                        actor=f"worker-{worker}",
                        now=NOW + timedelta(seconds=1),
                        nonce=NonceClaim(value=value, session=None),
                    )
                    won_issuance.append(i)
                else:
                    store.consume_nonce(value, session=None, now=NOW + timedelta(seconds=1))
                    won_consume.append(i)
            except NonceReplayError:
                refused += 1
            if i % 2:  # both append to the audit log at once: its seq must stay gapless
                event = AuditEvent(
                    actor=f"worker-{worker}", action="race.step", subject=str(i), detail={}
                )
                store.append_audit(event, now=NOW + timedelta(seconds=1))
        # Then both revoke at once: worker 0 devices, worker 1 its own certificates.
        serials = [1 + i * 2 + worker for i in won_issuance]
        feed: list[int] = []
        for k in range(DEVICES):
            barrier.wait(timeout=60)
            later = NOW + timedelta(seconds=2)
            if worker == 0:
                feed.append(
                    store.revoke_device(ueid(k + 1), reason="race", actor="w0", now=later).seq
                )
            elif k < len(serials):
                feed.append(
                    store.revoke_certificate(serials[k], reason="race", actor="w1", now=later).seq
                )
    return {"issued": won_issuance, "consumed": won_consume, "refused": refused, "feed": feed}


def issue_forever(url: str) -> None:
    with SqlRegistryStore(url) as store:
        for serial in range(1, 1_000_000):
            now = NOW + timedelta(milliseconds=serial)
            store.record_issuance(
                device=device(serial),
                certificate=certificate(serial, n=serial, now=now),
                actor="crash-writer",
                now=now,
            )
            print(f"issued {serial}", flush=True)
            if serial % 10 == 0:
                store.revoke_device(
                    device(serial - 5).ueid, reason="crash test", actor="crash-writer", now=now
                )
                print(f"revoked {serial - 5}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "issue-forever":
        sys.exit("usage: python -m tests.unit.onboarding.registry_workers issue-forever URL")
    issue_forever(sys.argv[2])
