"""Registry store throughput: the database work of one onboarding, against its floor.

One onboarding costs the registry two write transactions: ``issue_nonce`` (Challenge) and
``record_issuance(nonce=...)`` (Attest: consume the nonce, register/refresh the device, record the
certificate, append the audit entry). This measures onboardings per second through
:class:`SqlRegistryStore` with 1 and 4 threads, and, as the floor of the same database in the same
run, the rate of raw one-row commits (``INSERT`` + ``COMMIT`` on the same connection settings).

    .venv/bin/python bench/registry_store.py [--quick] [--pg]

``--pg`` also runs PostgreSQL (a throw-away server from tests/pgserver.py, with its test settings
fsync=off -- so PostgreSQL figures show CPU cost, not durability cost; or EDGETRUST_TEST_PG_URL).
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgetrust.onboarding.records import DeviceRegistration, NewCertificate, NonceClaim
from edgetrust.onboarding.store import SqlRegistryStore

NOW = datetime(2026, 5, 1, tzinfo=UTC)
PEM = "-----BEGIN CERTIFICATE-----\n" + "A" * 600 + "\n-----END CERTIFICATE-----\n"


def onboard(store: SqlRegistryStore, i: int) -> None:
    nonce = hashlib.sha256(i.to_bytes(8, "big")).digest()
    store.issue_nonce(value=nonce, session=f"s{i}", now=NOW, ttl=timedelta(minutes=5))
    ueid = b"\x01" + (i % 5000).to_bytes(16, "big")
    store.record_issuance(
        device=DeviceRegistration(
            ueid=ueid,
            product="bench",
            device_id_pem=PEM,
            device_id_fingerprint=hashlib.sha256(ueid).digest(),
        ),
        certificate=NewCertificate(
            serial=i + 1,
            spiffe_id=f"spiffe://edgetrust.local/device/{ueid.hex()}",
            not_before=NOW,
            not_after=NOW + timedelta(hours=1),
            pem=PEM,
        ),
        actor="bench",
        now=NOW,
        nonce=NonceClaim(value=nonce, session=f"s{i}"),
    )


def store_rate(url: str, n: int, threads: int, start: int, synchronous: str = "FULL") -> float:
    with SqlRegistryStore(url, sqlite_synchronous=synchronous) as store:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda i: onboard(store, i), range(start, start + n)))
        return n / (time.perf_counter() - t0)


def sqlite_floor(path: Path, n: int, synchronous: str) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS floor(a INTEGER PRIMARY KEY, b TEXT)")
    t0 = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO floor(b) VALUES (?)", (PEM,))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - t0)
    conn.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pg", action="store_true", help="also PostgreSQL")
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    print(f"registry store: onboardings/s (2 write transactions each), n={n}; host load matters")
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("FULL", "NORMAL"):
            floor = sqlite_floor(Path(tmp) / f"floor-{sync}.db", n, sync)
            url = f"sqlite:///{tmp}/registry-{sync}.db"
            for threads in (1, 4):
                rate = store_rate(url, n, threads, threads * 10**6, synchronous=sync)
                print(
                    f"  sqlite synchronous={sync:<6} threads={threads}: {rate:8.0f}/s   "
                    f"raw commit floor {floor:8.0f}/s  -> {2 * rate / floor:4.2f} of the floor "
                    "(2 commits per onboarding)"
                )
    if args.pg:
        from tests.pgserver import PostgresServer

        server = PostgresServer.start()
        try:
            url = server.create_database()
            for threads in (1, 4):
                rate = store_rate(url, n, threads, threads * 10**6)
                print(f"  postgresql (fsync=off test server) threads={threads}: {rate:8.0f}/s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
