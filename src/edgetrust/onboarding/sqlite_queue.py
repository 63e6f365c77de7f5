"""The verifier's view of an SQLite registry (see :class:`SqliteWriteQueue`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from edgetrust.onboarding.records import (
    DeviceRegistration,
    EndorsementRecord,
    IssuanceReceipt,
    NewCertificate,
    NonceClaim,
    NonceRecord,
    RevocationEvent,
)
from edgetrust.onboarding.store import SqlRegistryStore

__all__ = ["SqliteWriteQueue"]


class SqliteWriteQueue:
    """The verifier's view of an SQLite registry: the writes and reads the verifier makes.

    SQLite has one write lock; a writer that finds it taken waits in SQLite's busy handler, which
    *sleeps* (1, 2, 5, ... up to 100 ms per retry) instead of queueing. Under load that turned a
    ~1 ms transaction into a p99 of 1-2 s here. This class used to put a process-wide lock in
    front of every write; the queueing now lives in the registry itself
    (:meth:`Database.write <edgetrust.onboarding.database.Database.write>`: a group commit, where
    this process's concurrent writes share one transaction and one commit), so a second lock here
    would only split the batches again. It forwards; kept for callers that wrap a store in it.
    """

    def __init__(self, store: SqlRegistryStore) -> None:
        self._store = store

    # writes (group-committed by the store)

    def issue_nonce(
        self,
        *,
        value: bytes,
        session: str | None,
        now: datetime,
        ttl: timedelta,
        device_hint: str | None = None,
    ) -> NonceRecord:
        return self._store.issue_nonce(
            value=value, session=session, now=now, ttl=ttl, device_hint=device_hint
        )

    def consume_nonce(self, value: bytes, *, session: str | None, now: datetime) -> NonceRecord:
        return self._store.consume_nonce(value, session=session, now=now)

    def purge_nonces(self, *, expired_before: datetime) -> int:
        return self._store.purge_nonces(expired_before=expired_before)

    def record_issuance(
        self,
        *,
        device: DeviceRegistration,
        certificate: NewCertificate,
        actor: str,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        nonce: NonceClaim | None = None,
    ) -> IssuanceReceipt:
        return self._store.record_issuance(
            device=device,
            certificate=certificate,
            actor=actor,
            now=now,
            detail=detail,
            nonce=nonce,
        )

    # reads (straight through)

    def list_endorsements(self, *, product: str | None = None) -> list[EndorsementRecord]:
        return self._store.list_endorsements(product=product)

    def revocation_head(self) -> int:
        return self._store.revocation_head()

    def revocations_since(self, after_seq: int, *, limit: int = 1000) -> list[RevocationEvent]:
        return self._store.revocations_since(after_seq, limit=limit)
