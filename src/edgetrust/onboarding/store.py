"""The device registry: the :class:`RegistryStore` interface and :class:`SqlRegistryStore`.

The verifier calls it to hand out and consume nonces, to record every certificate it issues
(before the certificate leaves), to refuse revoked devices; the CLI to list, show, revoke and
audit; the revocation feed to follow ``revocations_since``. The tables are in
:mod:`edgetrust.onboarding.schema`, the database discipline in :mod:`edgetrust.onboarding.database`.

Concurrency guarantees (SQLite file shared by processes, or PostgreSQL shared by replicas):

* **Nonces are single use**: consumption is one ``UPDATE ... WHERE used_at IS NULL AND
  expires_at > now``; the database's row lock (PostgreSQL re-evaluates the condition after waiting)
  or write lock (SQLite) lets exactly one caller see a row updated.
* **No certificate for a revoked device**: :meth:`record_issuance` and :meth:`revoke_device` both
  lock the device row first, so either the issuance commits before the revocation (and the
  revocation then marks that certificate revoked) or it sees ``revoked`` and stores nothing.
* **No double issuance**: serial numbers are primary keys; a nonce consumed with an issuance is
  stored UNIQUE on its certificate row.
* **Gapless, commit-ordered sequences**: revocation and audit ``seq`` are ``max + 1`` computed
  under a lock held until commit (PostgreSQL: an advisory lock; SQLite: the write lock), so a
  feed reader that has seen ``seq = n`` never later sees a smaller one appear, and the audit hash
  chain is linear.
  Lock order, everywhere: audit -> nonce row -> device row -> certificate rows -> revocations. A
  transaction that will append to the audit log takes the audit lock *first* (PostgreSQL): with
  group commit one transaction carries many writes, and a batch that held the audit lock while
  waiting for a row that another replica's batch held while waiting for the audit lock would
  deadlock. Writes without an audit entry (nonce issue and consumption) take only their row.

Writes go through :meth:`Database.write <edgetrust.onboarding.database.Database.write>` and so
through its group commit; the hot ones (nonces, issuance, audit) run hand-written statements on the
driver's cursor (:mod:`edgetrust.onboarding.statements`). A nonce insert is written with
``durable=False``: see :mod:`edgetrust.onboarding.nonces` for why that is safe.

Time is a parameter (``now``, aware datetimes); the store never reads the clock.

The methods live with their tables: nonces in :mod:`~edgetrust.onboarding.registry_nonces`,
issuance and devices in :mod:`~edgetrust.onboarding.registry_devices`, revocations and the audit
log in :mod:`~edgetrust.onboarding.registry_ledger`, endorsements in
:mod:`~edgetrust.onboarding.registry_endorsements`; :class:`SqlRegistryStore` combines them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import URL

from edgetrust.onboarding import ledger
from edgetrust.onboarding.database import Database
from edgetrust.onboarding.nonces import NonceStore
from edgetrust.onboarding.records import (
    AuditChain,
    AuditEvent,
    AuditRecord,
    CertificateRecord,
    DeviceRecord,
    DeviceRegistration,
    DeviceStatus,
    Endorsement,
    EndorsementRecord,
    IssuanceReceipt,
    NewCertificate,
    NonceClaim,
    RevocationEvent,
)
from edgetrust.onboarding.registry_devices import SqlDevices
from edgetrust.onboarding.registry_endorsements import SqlEndorsements
from edgetrust.onboarding.registry_ledger import SqlLedger
from edgetrust.onboarding.registry_nonces import SqlNonces
from edgetrust.onboarding.statements import statements_for

__all__ = [
    "RegistryStore",
    "SqlDevices",
    "SqlEndorsements",
    "SqlLedger",
    "SqlNonces",
    "SqlRegistryStore",
]


class RegistryStore(NonceStore, Protocol):
    """Everything the verifier, the CLI and the revocation feed need from the registry."""

    def record_issuance(
        self,
        *,
        device: DeviceRegistration,
        certificate: NewCertificate,
        actor: str,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        nonce: NonceClaim | None = None,
    ) -> IssuanceReceipt: ...
    def get_device(self, ueid: bytes) -> DeviceRecord: ...
    def find_device(self, ueid: bytes) -> DeviceRecord | None: ...
    def list_devices(
        self, *, status: DeviceStatus | None = None, product: str | None = None
    ) -> list[DeviceRecord]: ...
    def certificates_of(self, ueid: bytes) -> list[CertificateRecord]: ...
    def get_certificate(self, serial: int) -> CertificateRecord: ...
    def revoke_device(
        self, ueid: bytes, *, reason: str, actor: str, now: datetime
    ) -> RevocationEvent: ...
    def revoke_certificate(
        self, serial: int, *, reason: str, actor: str, now: datetime
    ) -> RevocationEvent: ...
    def is_revoked(self, *, ueid: bytes | None = None, serial: int | None = None) -> bool: ...
    def ensure_not_revoked(self, ueid: bytes) -> None: ...
    def revocations_since(self, after_seq: int, *, limit: int = 1000) -> list[RevocationEvent]: ...
    def revocation_head(self) -> int: ...
    def put_endorsement(
        self, endorsement: Endorsement, *, actor: str, now: datetime
    ) -> EndorsementRecord: ...
    def get_endorsement(self, product: str, firmware_version: str) -> EndorsementRecord: ...
    def list_endorsements(self, *, product: str | None = None) -> list[EndorsementRecord]: ...
    def append_audit(self, event: AuditEvent, *, now: datetime) -> AuditRecord: ...
    def audit_since(self, after_seq: int = 0, *, limit: int | None = None) -> list[AuditRecord]: ...
    def verify_audit_chain(self, *, expect_head: ledger.AuditHead | None = None) -> AuditChain: ...


class SqlRegistryStore(SqlNonces, SqlDevices, SqlLedger, SqlEndorsements):
    """:class:`RegistryStore` on SQLite or PostgreSQL. Thread-safe; share one per process.

    ``create=True`` creates the schema when missing (idempotent; safe when replicas start at
    once); ``create=False`` only opens an existing registry and raises
    :class:`~edgetrust.errors.ConfigError` when there is none (what the read-side CLI wants).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        create: bool = True,
        sqlite_synchronous: str = "FULL",
        busy_timeout_ms: int = 10_000,
        pool_size: int = 8,
        echo: bool = False,
    ) -> None:
        self._db = Database(
            url,
            sqlite_synchronous=sqlite_synchronous,
            busy_timeout_ms=busy_timeout_ms,
            pool_size=pool_size,
            echo=echo,
        )
        try:
            self._db.ensure_schema(create=create)
        except BaseException:
            self._db.dispose()
            raise
        self._sql = statements_for(self._db.dialect)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.dialect

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return self._db.url

    @property
    def database(self) -> Database:
        """The underlying database (tests and maintenance; never write behind the API)."""
        return self._db

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> SqlRegistryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if TYPE_CHECKING:  # mypy proves that the SQL store implements the whole interface

    def _implements(store: SqlRegistryStore) -> RegistryStore:
        return store
