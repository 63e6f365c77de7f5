"""The registry's two append-only ledgers: the revocation feed and the hash-chained audit log.

Both are written only inside a store transaction, through :func:`append_revocation` and
:func:`append_audit`, and never updated or deleted (triggers refuse it, see
:mod:`edgetrust.onboarding.schema`).

Sequence numbers are ``max(seq) + 1`` computed under a lock that is held until the commit
(PostgreSQL: a transaction-scoped advisory lock per ledger, which readers never wait for; SQLite:
the database write lock of ``BEGIN IMMEDIATE``). Hence, across processes and replicas:

* ``seq`` is gapless (a rolled-back transaction takes its number with it; an identity column or a
  PostgreSQL sequence would leave a hole), and
* entries become visible in ``seq`` order, so a feed follower that has read up to ``n`` can never
  later see an entry ``<= n`` appear (with a sequence, ``n + 1`` could commit after ``n + 2``).

Audit entries form a hash chain: ``digest_n = SHA-256(digest_{n-1} || E_n)`` with
``digest_0 = 32 zero bytes`` and ``E_n`` the UTF-8 JSON array
``[seq, at (UTC ISO 8601, microseconds), actor, action, subject, detail (canonical JSON text)]``.
:func:`verify_chain` recomputes it, so an entry altered or removed behind the store's back (for
example by an operator who dropped the triggers) is detected.

The chain alone cannot show that entries were removed *from the end*, nor a log rewritten from
some entry on with every later digest recomputed: what is left is a valid chain. Hence anchoring:
an operator records the head now and then somewhere else (:class:`AuditHead`, written
``SEQ:HASH`` -- ``edgetrust registry audit --head``), and ``verify_chain(..., expect_head=head)``
(``edgetrust registry audit --verify --expect-head SEQ:HASH``) then also checks that the log still
holds entry ``SEQ`` with digest ``HASH``; if not it raises :class:`AuditAnchorError` (the log ends
before ``SEQ``: truncated; another digest there: rewritten). Entries appended since pass. What
was appended after the last recorded head is covered only by the next one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from edgetrust.errors import (
    AuditAnchorError,
    ConfigError,
    InvalidRequestError,
    OversizeError,
    StoreError,
)
from edgetrust.onboarding import schema as s
from edgetrust.onboarding.database import Database
from edgetrust.onboarding.records import (
    AuditChain,
    AuditEvent,
    AuditRecord,
    RevocationEvent,
    RevocationKind,
    revocation_event,
)
from edgetrust.onboarding.statements import statements_for

#: The digest that precedes the first audit entry.
AUDIT_GENESIS = bytes(32)
MAX_DETAIL = 64 * 1024

# Built once (statement construction costs more than execution on the hot path).
_REVOCATION_HEAD = select(func.coalesce(func.max(s.revocations.c.seq), 0))
_REVOCATION_INSERT = s.revocations.insert().returning(*s.revocations.c)


def canonical_json(value: Mapping[str, Any]) -> str:
    """How audit details are stored: sorted keys, no whitespace, no NaN, UTF-8 kept."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def audit_digest(
    previous: bytes, *, seq: int, at: datetime, actor: str, action: str, subject: str, detail: str
) -> bytes:
    """``SHA-256(previous || E)`` for one entry (see the module docstring for ``E``)."""
    entry = json.dumps(
        [
            seq,
            at.astimezone(UTC).isoformat(timespec="microseconds"),
            actor,
            action,
            subject,
            detail,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(previous + entry.encode("utf-8")).digest()


def entry_digest(previous: bytes, entry: AuditRecord) -> bytes:
    """What ``entry``'s digest must be after ``previous`` (its own ``digest`` is not read)."""
    return audit_digest(
        previous,
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        detail=entry.detail_json,
    )


def append_audit(db: Database, conn: Connection, event: AuditEvent, now: datetime) -> AuditRecord:
    """Append ``event`` at ``now`` inside the caller's write transaction.

    Takes the audit writers' lock (PostgreSQL; a transaction that appends should take it first,
    before any row lock: see :mod:`edgetrust.onboarding.store`) and remembers the new head for
    the next append of the same transaction (a batch of issuances reads the head once).
    """
    try:
        detail = canonical_json(event.detail)
    except (TypeError, ValueError) as e:
        raise InvalidRequestError(f"audit detail is not JSON: {e}") from e
    if len(detail) > MAX_DETAIL:
        raise OversizeError(f"audit detail is longer than {MAX_DETAIL} characters")
    db.serialize(conn, "audit")
    state = db.state(conn)
    sql = statements_for(db.dialect)
    cursor = state.cursor
    head = state.audit_head
    if head is None:
        cursor.execute(sql.audit_last)
        last = cursor.fetchone()
        head = (0, AUDIT_GENESIS) if last is None else (int(last[0]), bytes.fromhex(last[1]))
    seq = head[0] + 1
    at = now.astimezone(UTC)
    digest = audit_digest(
        head[1],
        seq=seq,
        at=at,
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        detail=detail,
    )
    cursor.execute(
        sql.audit_insert,
        (seq, sql.time(at), event.actor, event.action, event.subject, detail, digest.hex()),
    )
    state.audit_head = (seq, digest)
    return AuditRecord(
        seq=seq,
        at=at,
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        detail_json=detail,
        digest=digest,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditHead:
    """One point of the audit chain, to be recorded outside the registry: ``seq`` and its digest.

    ``seq = 0`` with :data:`AUDIT_GENESIS` is the head of an empty log.
    """

    seq: int
    digest: bytes

    def text(self) -> str:
        """``SEQ:HASH`` (the digest in lower-case hex): what ``--expect-head`` reads back."""
        return f"{self.seq}:{self.digest.hex()}"

    @classmethod
    def parse(cls, text: str) -> AuditHead:
        """Read ``SEQ:HASH``; :class:`ConfigError` unless SEQ >= 0 and HASH is 64 hex digits."""
        seq_text, colon, digest_text = text.strip().partition(":")
        if not colon or not (seq_text.isascii() and seq_text.isdigit()):
            raise ConfigError(f"an audit head is SEQ:HASH (e.g. 42:<64 hex digits>), not {text!r}")
        try:
            digest = bytes.fromhex(digest_text)
        except ValueError:
            digest = b""
        if len(digest) != len(AUDIT_GENESIS):
            raise ConfigError(f"the HASH of an audit head is 64 hex digits (SHA-256), not {text!r}")
        return cls(seq=int(seq_text), digest=digest)


def chain_head(chain: AuditChain, *, start: int = 1) -> AuditHead:
    """The head of a chain verified by :func:`verify_chain` (from ``start``)."""
    return AuditHead(seq=start - 1 + chain.length, digest=chain.head)


def verify_chain(
    entries: Iterable[AuditRecord], *, start: int = 1, expect_head: AuditHead | None = None
) -> AuditChain:
    """Check that ``entries`` run ``start, start+1, ...`` and that every digest chains.

    Pure (no I/O): feed it the whole log in ``seq`` order. Raises :class:`StoreError` at the first
    gap or altered entry. With ``expect_head`` (a head recorded earlier), also checks that the
    chain still holds it, or raises :class:`AuditAnchorError` (see the module docstring).
    """
    previous, expected = AUDIT_GENESIS, start
    anchor_seq = -1 if expect_head is None else expect_head.seq
    at_anchor = previous if anchor_seq == start - 1 else None
    for entry in entries:
        if entry.seq != expected:
            raise StoreError(f"audit log gap: seq {expected} is missing (found {entry.seq})")
        digest = entry_digest(previous, entry)
        if digest != entry.digest:
            raise StoreError(f"audit log altered: digest mismatch at seq {entry.seq}")
        if entry.seq == anchor_seq:
            at_anchor = digest
        previous, expected = digest, expected + 1
    chain = AuditChain(length=expected - start, head=previous)
    if expect_head is not None:
        _check_head(expect_head, at_anchor, chain_head(chain, start=start))
    return chain


def _check_head(expected: AuditHead, digest: bytes | None, head: AuditHead) -> None:
    """Compare a recorded head with the verified chain that ends at ``head``.

    ``digest`` is the chain's digest at ``expected.seq`` (``None`` where the chain does not reach
    it). Raises :class:`AuditAnchorError` for a truncated or rewritten log.
    """
    hint = (
        "entries recorded before were removed or replaced behind the store's back: keep this "
        "database for inspection and restore the registry from a backup"
    )
    if digest is None:
        if expected.seq > head.seq:
            raise AuditAnchorError(
                f"audit log truncated: it ends at seq {head.seq}, "
                f"before the recorded head {expected.text()}",
                hint=hint,
            )
        raise AuditAnchorError(
            f"the recorded head {expected.text()} is before the verified part of the log",
        )
    if digest != expected.digest:
        raise AuditAnchorError(
            f"audit log rewritten: seq {expected.seq} has digest {digest.hex()}, "
            f"not the recorded {expected.digest.hex()}",
            hint=hint,
        )


def append_revocation(
    db: Database,
    conn: Connection,
    kind: RevocationKind,
    *,
    ueid_hex: str,
    serial_hex: str | None,
    reason: str,
    actor: str,
    now: datetime,
) -> RevocationEvent:
    """Append one feed event inside the caller's transaction."""
    db.serialize(conn, "revocations")
    seq = int(conn.execute(_REVOCATION_HEAD).scalar_one()) + 1
    values = {
        "seq": seq,
        "kind": kind.value,
        "ueid": ueid_hex,
        "serial": serial_hex,
        "reason": reason,
        "actor": actor,
        "at": now,
    }
    row = conn.execute(_REVOCATION_INSERT, values).one()
    return revocation_event(row)


def latest_revocation(conn: Connection, ueid_hex: str, serial_hex: str | None) -> RevocationEvent:
    """The event that revoked the device (or this certificate of it): for idempotent revokes."""
    r = s.revocations
    match = r.c.kind == RevocationKind.DEVICE.value
    if serial_hex is not None:
        certificate = (r.c.kind == RevocationKind.CERTIFICATE.value) & (r.c.serial == serial_hex)
        match = or_(match, certificate)
    query = select(r).where(r.c.ueid == ueid_hex, match).order_by(r.c.seq.desc()).limit(1)
    row = conn.execute(query).first()
    if row is None:
        raise StoreError(f"{ueid_hex} is revoked but has no revocation event (inconsistent)")
    return revocation_event(row)
