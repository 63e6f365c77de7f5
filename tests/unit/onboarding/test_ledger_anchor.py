"""Anchoring the audit chain: a head recorded elsewhere catches a truncated or rewritten log.

Pure (``ledger.verify_chain(..., expect_head=...)`` takes the rows); the CLI and both database
backends are in ``test_registry_audit_anchor.py``.
"""

from __future__ import annotations

import dataclasses

import pytest

from edgetrust.errors import AuditAnchorError, ConfigError, StoreError
from edgetrust.onboarding.ledger import (
    AUDIT_GENESIS,
    AuditHead,
    chain_head,
    entry_digest,
    verify_chain,
)
from edgetrust.onboarding.records import AuditRecord
from tests.unit.onboarding.test_ledger import _chain


def _rechained(entries: list[AuditRecord], start: int, actor: str) -> list[AuditRecord]:
    """``entries`` with ``actor`` changed from ``start`` on and every later digest recomputed:
    a consistent chain that only an anchor can tell from the original."""
    rebuilt = entries[: start - 1]
    for entry in entries[start - 1 :]:
        changed = dataclasses.replace(entry, actor=actor)
        previous = rebuilt[-1].digest if rebuilt else AUDIT_GENESIS
        rebuilt.append(dataclasses.replace(changed, digest=entry_digest(previous, changed)))
    return rebuilt


def _head(entries: list[AuditRecord], seq: int) -> AuditHead:
    return AuditHead(seq=seq, digest=entries[seq - 1].digest if seq else AUDIT_GENESIS)


# ------------------------------------------------------------------------------ the head


def test_head_text_round_trip() -> None:
    entries = _chain(3)
    head = chain_head(verify_chain(entries))
    assert head == _head(entries, 3)
    assert head.text() == f"3:{entries[2].digest.hex()}"
    assert AuditHead.parse(head.text()) == head
    assert AuditHead.parse(f" 3:{entries[2].digest.hex().upper()}\n") == head


def test_head_of_an_empty_log_is_the_genesis() -> None:
    assert chain_head(verify_chain([])) == AuditHead(seq=0, digest=AUDIT_GENESIS)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "3",
        f"-1:{'00' * 32}",
        f"x:{'00' * 32}",
        f"\u00b2:{'00' * 32}",  # a digit to str.isdigit, not to int()
        "3:",
        f"3:{'00' * 31}",
        f"3:{'00' * 33}",
        f"3:{'zz' * 32}",
    ],
)
def test_malformed_head_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="audit head"):
        AuditHead.parse(text)


# ------------------------------------------------------------------------------ verification


@pytest.mark.parametrize("seq", [0, 1, 3, 5])
def test_recorded_head_in_the_chain_passes(seq: int) -> None:
    entries = _chain(5)
    assert verify_chain(entries, expect_head=_head(entries, seq)).length == 5


def test_chain_extended_since_the_head_passes() -> None:
    recorded = chain_head(verify_chain(_chain(3)))
    assert verify_chain(_chain(8), expect_head=recorded).length == 8


def test_truncated_chain_is_detected() -> None:
    entries = _chain(5)
    recorded = _head(entries, 5)
    verify_chain(entries[:3])  # the rest is still a valid chain: only the anchor tells
    with pytest.raises(AuditAnchorError, match=r"truncated: it ends at seq 3, before .* 5:"):
        verify_chain(entries[:3], expect_head=recorded)
    with pytest.raises(AuditAnchorError, match="truncated: it ends at seq 0"):
        verify_chain([], expect_head=recorded)


def test_rewritten_and_rechained_log_is_detected() -> None:
    entries = _chain(5)
    forged = _rechained(entries, 2, "mallory")
    verify_chain(forged)  # consistent: the chain alone cannot tell
    with pytest.raises(AuditAnchorError, match="rewritten: seq 4 has digest") as info:
        verify_chain(forged, expect_head=_head(entries, 4))
    assert info.value.hint
    # A head recorded before the rewritten entry still holds.
    assert verify_chain(forged, expect_head=_head(entries, 1)).length == 5


def test_truncated_then_extended_log_is_detected() -> None:
    entries = _chain(5)
    regrown = entries[:2] + _rechained(entries, 3, "mallory")[2:]
    with pytest.raises(AuditAnchorError, match="rewritten: seq 5"):
        verify_chain(regrown, expect_head=_head(entries, 5))


def test_wrong_genesis_digest_is_detected() -> None:
    with pytest.raises(AuditAnchorError, match="rewritten: seq 0"):
        verify_chain(_chain(2), expect_head=AuditHead(seq=0, digest=b"\x01" * 32))


def test_a_chain_broken_inside_fails_as_before() -> None:
    entries = _chain(4)
    broken = [entries[0], dataclasses.replace(entries[1], actor="mallory"), *entries[2:]]
    with pytest.raises(StoreError, match="digest mismatch at seq 2") as info:
        verify_chain(broken, expect_head=_head(entries, 4))
    assert not isinstance(info.value, AuditAnchorError)


def test_head_before_a_partial_chain_is_refused() -> None:
    entries = _chain(5)
    with pytest.raises(AuditAnchorError, match="before the verified part"):
        verify_chain([], start=4, expect_head=_head(entries, 1))
