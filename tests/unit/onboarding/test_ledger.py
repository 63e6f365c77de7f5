"""The audit hash chain, checked without a database (ledger.verify_chain is pure)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

import pytest

from edgetrust.errors import StoreError
from edgetrust.onboarding.ledger import AUDIT_GENESIS, audit_digest, canonical_json, verify_chain
from edgetrust.onboarding.records import AuditRecord
from tests.unit.onboarding.registry_data import NOW


def _chain(n: int) -> list[AuditRecord]:
    entries, previous = [], AUDIT_GENESIS
    for seq in range(1, n + 1):
        detail = canonical_json({"seq": seq, "note": "ü"})
        at = NOW + timedelta(seconds=seq)
        digest = audit_digest(
            previous, seq=seq, at=at, actor="v", action="x.y", subject=f"s{seq}", detail=detail
        )
        entries.append(
            AuditRecord(
                seq=seq,
                at=at,
                actor="v",
                action="x.y",
                subject=f"s{seq}",
                detail_json=detail,
                digest=digest,
            )
        )
        previous = digest
    return entries


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, "ü"]}) == '{"a":[1,"ü"],"b":1}'


def test_known_digest() -> None:
    # Pinned: a change of the entry encoding would break every existing chain.
    digest = audit_digest(
        AUDIT_GENESIS, seq=1, at=NOW, actor="v", action="x.y", subject="s", detail="{}"
    )
    entry = b'[1,"2026-05-01T12:00:00.000000+00:00","v","x.y","s","{}"]'
    assert digest == hashlib.sha256(bytes(32) + entry).digest()


def test_valid_chain() -> None:
    entries = _chain(4)
    chain = verify_chain(entries)
    assert chain.length == 4
    assert chain.head == entries[-1].digest


def test_gap_is_detected() -> None:
    entries = _chain(4)
    with pytest.raises(StoreError, match="seq 3 is missing"):
        verify_chain(entries[:2] + entries[3:])


def test_reordering_is_detected() -> None:
    entries = _chain(3)
    with pytest.raises(StoreError, match="seq 2 is missing"):
        verify_chain([entries[0], entries[2], entries[1]])


@pytest.mark.parametrize("field", ["actor", "action", "subject", "detail_json", "at"])
def test_altered_field_is_detected(field: str) -> None:
    entries = _chain(3)
    value = NOW if field == "at" else '{"x":1}' if field == "detail_json" else "other"
    entries[1] = dataclasses.replace(entries[1], **{field: value})
    with pytest.raises(StoreError, match="digest mismatch at seq 2"):
        verify_chain(entries)


def test_recomputed_digest_is_caught_by_the_next_entry() -> None:
    entries = _chain(3)
    forged = dataclasses.replace(entries[1], actor="mallory")
    forged = dataclasses.replace(
        forged,
        digest=audit_digest(
            entries[0].digest,
            seq=2,
            at=forged.at,
            actor="mallory",
            action=forged.action,
            subject=forged.subject,
            detail=forged.detail_json,
        ),
    )
    with pytest.raises(StoreError, match="digest mismatch at seq 3"):
        verify_chain([entries[0], forged, entries[2]])
