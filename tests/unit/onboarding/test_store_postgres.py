"""PostgreSQL specifics: a least-privilege role, and replicas creating the schema together."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from edgetrust.onboarding.store import SqlRegistryStore
from tests.pgserver import PostgresServer
from tests.unit.onboarding.registry_data import NOW, certificate, device, ueid

pytestmark = pytest.mark.postgres


def test_store_runs_with_insert_only_rights_on_the_ledgers(pg_server: PostgresServer) -> None:
    """An operator may take UPDATE/DELETE on audit and revocations away from the verifier."""
    role, password = f"verifier_{secrets.token_hex(4)}", secrets.token_hex(12)
    with pg_server.database() as url:
        SqlRegistryStore(url).close()  # the schema, created by the owner
        with psycopg.connect(pg_server.libpq_url(url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON devices, certificates, nonces, "
                    "endorsements TO {r}; GRANT SELECT, INSERT ON audit, revocations TO {r}; "
                    "GRANT SELECT ON schema_meta TO {r}"
                ).format(r=sql.Identifier(role))
            )
        limited = make_url(url).set(username=role, password=password).render_as_string(False)
        try:
            with SqlRegistryStore(limited) as store:
                store.issue_nonce(value=bytes(32), session=None, now=NOW, ttl=timedelta(minutes=1))
                store.record_issuance(
                    device=device(1), certificate=certificate(1), actor="v", now=NOW
                )
                store.revoke_device(ueid(1), reason="r", actor="op", now=NOW)
                assert store.verify_audit_chain().length == 2
                with (
                    pytest.raises(sa_exc.ProgrammingError, match="permission denied"),
                    store.database.engine.begin() as conn,
                ):
                    conn.execute(text("DELETE FROM audit"))
        finally:
            with psycopg.connect(pg_server.libpq_url(url), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP OWNED BY {r}; DROP ROLE {r}").format(r=sql.Identifier(role))
                )


def test_replicas_starting_together_create_the_schema_once(pg_server: PostgresServer) -> None:
    with pg_server.database() as url:
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def start() -> None:
            try:
                barrier.wait(timeout=30)
                SqlRegistryStore(url).close()
            except BaseException as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        with SqlRegistryStore(url, create=False) as store, store.database.engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM schema_meta")).scalar() == 1
