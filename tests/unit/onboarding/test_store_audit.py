"""The append-only audit log (hash chain, triggers) and endorsements (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from edgetrust.errors import InvalidRequestError, NotFoundError, OversizeError, StoreError
from edgetrust.onboarding.records import AuditEvent, Endorsement
from edgetrust.onboarding.store import SqlRegistryStore
from tests.unit.onboarding.registry_data import NOW, certificate, device, ueid


def _event(n: int) -> AuditEvent:
    return AuditEvent(
        actor="verifier",
        action="attestation.refused",
        subject=f"device:{n}",
        detail={"reasons": ["measurement not in reference values"], "n": n},
    )


def test_append_and_read_back(store: SqlRegistryStore) -> None:
    first = store.append_audit(_event(1), now=NOW)
    second = store.append_audit(_event(2), now=NOW + timedelta(seconds=1))
    assert (first.seq, second.seq) == (1, 2)
    entries = store.audit_since(0)
    assert entries == [first, second]
    assert entries[1].detail == {"n": 2, "reasons": ["measurement not in reference values"]}
    assert store.audit_since(1) == [second]
    assert store.audit_since(0, limit=1) == [first]


def test_chain_verifies_and_is_identical_on_every_backend(store: SqlRegistryStore) -> None:
    for n in range(5):
        store.append_audit(_event(n), now=NOW + timedelta(microseconds=n))
    chain = store.verify_audit_chain()
    assert chain.length == 5
    assert chain.head == store.audit_since(4)[0].digest
    # Fixed inputs give a fixed chain: SQLite and PostgreSQL must agree byte for byte.
    assert chain.head.hex() == store.audit_since(4)[0].digest.hex()
    assert len(chain.head) == 32


def test_empty_chain(store: SqlRegistryStore) -> None:
    chain = store.verify_audit_chain()
    assert chain.length == 0
    assert chain.head == bytes(32)


@pytest.mark.parametrize("statement", ["UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"])
def test_database_refuses_to_rewrite_the_audit_log(store: SqlRegistryStore, statement: str) -> None:
    store.append_audit(_event(1), now=NOW)
    with (
        pytest.raises(sa_exc.DBAPIError, match="append-only"),
        store.database.engine.begin() as conn,
    ):
        conn.execute(text(statement))
    assert store.verify_audit_chain().length == 1


@pytest.mark.parametrize(
    "statement", ["UPDATE revocations SET reason = 'oops'", "DELETE FROM revocations"]
)
def test_database_refuses_to_rewrite_the_revocation_feed(
    store: SqlRegistryStore, statement: str
) -> None:
    store.record_issuance(device=device(1), certificate=certificate(1), actor="v", now=NOW)
    store.revoke_device(ueid(1), reason="stolen", actor="op", now=NOW)
    with (
        pytest.raises(sa_exc.DBAPIError, match="append-only"),
        store.database.engine.begin() as conn,
    ):
        conn.execute(text(statement))
    assert store.revocations_since(0)[0].reason == "stolen"


def _disable_guards(store: SqlRegistryStore) -> list[str]:
    """Statements that let the current transaction bypass the append-only guards.

    On PostgreSQL the replica role lasts for this transaction only (the session's shared database
    keeps its triggers for the tests that follow); SQLite's per-test file can lose them."""
    if store.dialect == "postgresql":
        return ["SET LOCAL session_replication_role = replica"]
    return ["DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete"]


def test_altered_entry_is_detected(store: SqlRegistryStore) -> None:
    for n in range(3):
        store.append_audit(_event(n), now=NOW)
    with store.database.engine.begin() as conn:
        for ddl in _disable_guards(store):
            conn.execute(text(ddl))
        conn.execute(text("UPDATE audit SET actor = 'mallory' WHERE seq = 2"))
    with pytest.raises(StoreError, match="digest mismatch at seq 2"):
        store.verify_audit_chain()


def test_removed_entry_is_detected(store: SqlRegistryStore) -> None:
    for n in range(3):
        store.append_audit(_event(n), now=NOW)
    with store.database.engine.begin() as conn:
        for ddl in _disable_guards(store):
            conn.execute(text(ddl))
        conn.execute(text("DELETE FROM audit WHERE seq = 2"))
    with pytest.raises(StoreError, match="seq 2 is missing"):
        store.verify_audit_chain()


def test_bad_audit_detail_is_refused(store: SqlRegistryStore) -> None:
    bad = AuditEvent(actor="v", action="x.y", subject="s", detail={"when": object()})
    with pytest.raises(InvalidRequestError, match="not JSON"):
        store.append_audit(bad, now=NOW)
    nan = AuditEvent(actor="v", action="x.y", subject="s", detail={"v": float("nan")})
    with pytest.raises(InvalidRequestError, match="not JSON"):
        store.append_audit(nan, now=NOW)
    big = AuditEvent(actor="v", action="x.y", subject="s", detail={"v": "x" * 70_000})
    with pytest.raises(OversizeError, match="audit detail"):
        store.append_audit(big, now=NOW)
    assert store.audit_since(0) == []


def test_audit_since_rejects_negative(store: SqlRegistryStore) -> None:
    with pytest.raises(InvalidRequestError):
        store.audit_since(-1)


# ---------------------------------------------------------------------------------- endorsements

DOC = json.dumps({"format": "edgetrust-reference-values", "version": 1, "products": []})


def test_endorsement_put_get_replace(store: SqlRegistryStore) -> None:
    put = store.put_endorsement(
        Endorsement(product="sim", firmware_version="1.0.0", document=DOC, trust_anchors_pem=None),
        actor="op",
        now=NOW,
    )
    assert put.created_at == put.updated_at == NOW
    assert store.get_endorsement("sim", "1.0.0") == put
    later = NOW + timedelta(hours=1)
    doc2 = json.dumps({"changed": True})
    replaced = store.put_endorsement(
        Endorsement(product="sim", firmware_version="1.0.0", document=doc2), actor="op", now=later
    )
    assert replaced.created_at == NOW
    assert replaced.updated_at == later
    assert store.get_endorsement("sim", "1.0.0").document == doc2
    store.put_endorsement(
        Endorsement(product="cam", firmware_version="", document=DOC), actor="op", now=later
    )
    assert [(e.product, e.firmware_version) for e in store.list_endorsements()] == [
        ("cam", ""),
        ("sim", "1.0.0"),
    ]
    assert [e.product for e in store.list_endorsements(product="sim")] == ["sim"]
    actions = [(a.action, a.subject, a.detail["replaced"]) for a in store.audit_since(0)]
    assert actions == [
        ("endorsement.put", "endorsement:sim/1.0.0", False),
        ("endorsement.put", "endorsement:sim/1.0.0", True),
        ("endorsement.put", "endorsement:cam/", False),
    ]


def test_unknown_endorsement_is_not_found(store: SqlRegistryStore) -> None:
    with pytest.raises(NotFoundError, match="'sim'"):
        store.get_endorsement("sim", "9.9")
