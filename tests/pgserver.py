"""A throw-away PostgreSQL server for the tests of the scale-out registry store.

``PostgresServer.start()`` finds the server binaries (``bash scripts/pg.sh bindir``: Debian's
``/usr/lib/postgresql/<ver>/bin`` or ``initdb``/``postgres`` on PATH), runs ``initdb`` into a fresh
temporary directory and starts ``postgres`` listening on 127.0.0.1 only, on a free port, with its
unix socket inside that directory. When the tests run as root (CI containers), everything runs as
the ``postgres`` OS user (``runuser``), because PostgreSQL refuses to run as root; the directory is
chowned to it. Durability is switched off (``fsync=off``): the cluster lives for one test session,
the server process is never killed by the tests, and crash-safety tests kill *clients*.
``start(durable=True)`` (the benchmarks) keeps PostgreSQL's durable settings instead (``fsync``,
``synchronous_commit`` and ``full_page_writes`` on), so that commits wait for the disk.

Password authentication (SCRAM) guards the TCP port; the unix socket lives in a 0700 directory.

``EDGETRUST_TEST_PG_URL`` (a superuser/CREATEDB URL such as
``postgresql://user:pw@host:5432/postgres``) makes the tests use an existing server instead.

Each test gets its own database (:meth:`PostgresServer.create_database`), cloned from a template.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
ENV_URL = "EDGETRUST_TEST_PG_URL"
READY_TIMEOUT_S = 30.0
#: switched off for the tests, on with ``start(durable=True)``
DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


class PostgresUnavailableError(RuntimeError):
    """The test PostgreSQL server could not be found or started (a clear, actionable message)."""


def find_bindir() -> Path:
    """The directory with ``initdb`` and ``postgres``, as ``scripts/pg.sh bindir`` reports it."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "pg.sh"), "bindir"],
        capture_output=True,
        text=True,
        check=False,
    )
    bindir = Path(proc.stdout.strip()) if proc.returncode == 0 else None
    if bindir is None or not (bindir / "initdb").is_file() or not (bindir / "postgres").is_file():
        raise PostgresUnavailableError(
            "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH); "
            "run `bash scripts/pg.sh install` (or `bash scripts/setup.sh --dev`), "
            f"or set {ENV_URL} to an existing server"
        )
    return bindir


def _temp_root(run_as: str | None) -> str | None:
    """A temporary directory the server's user can reach (TMPDIR may sit in root's 0700 home)."""
    root = Path(tempfile.gettempdir())
    if run_as is None:
        return None
    for directory in (root, *root.parents):
        if not directory.stat().st_mode & 0o001:  # not traversable by others
            return "/tmp"  # world-traversable by definition; mkdtemp makes ours 0700
    return str(root)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _sqlalchemy_url(conninfo_url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if conninfo_url.startswith(prefix):
            return "postgresql+psycopg://" + conninfo_url.removeprefix(prefix)
    return conninfo_url


@dataclass(slots=True)
class PostgresServer:
    """A running PostgreSQL server usable by the tests (started here, or given by URL)."""

    #: libpq URL of the maintenance database (``postgres``), with credentials.
    admin_url: str
    datadir: Path | None = None
    bindir: Path | None = None
    run_as: str | None = None
    _counter: int = field(default=0, init=False)

    # ---------------------------------------------------------------------- start / stop

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        """Use ``EDGETRUST_TEST_PG_URL`` if set, else start a private cluster (or raise).

        ``durable``: start the private cluster with fsync, synchronous_commit and full_page_writes
        on (the tests' default is off: fast and throw-away); an external server keeps its own.
        """
        url = os.environ.get(ENV_URL)
        if url:
            try:
                psycopg.connect(url, connect_timeout=10).close()
            except psycopg.Error as e:
                raise PostgresUnavailableError(
                    f"{ENV_URL} is set but the server refuses: {e}"
                ) from e
            return cls(admin_url=url)
        return cls._start_private(find_bindir(), durable=durable)

    @classmethod
    def _start_private(cls, bindir: Path, *, durable: bool = False) -> PostgresServer:
        run_as = None
        if os.geteuid() == 0:
            run_as = "postgres"
            try:
                pw = pwd.getpwnam(run_as)
            except KeyError as e:
                raise PostgresUnavailableError(
                    "running as root but there is no 'postgres' OS user to run the server as "
                    "(Debian's postgresql package creates it; `bash scripts/pg.sh install`)"
                ) from e
        datadir = Path(tempfile.mkdtemp(prefix="edgetrust-pg-", dir=_temp_root(run_as)))
        password = secrets.token_hex(16)
        pwfile = datadir / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        pgdata = datadir / "data"
        if run_as is not None:
            os.chown(datadir, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        server = cls(admin_url="", datadir=datadir, bindir=bindir, run_as=run_as)
        try:
            server._run(
                "initdb",
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
            last_error = ""
            for _attempt in range(3):  # a free port can be taken between probe and bind
                port = _free_port()
                try:
                    server._run(
                        "pg_ctl",
                        "-D",
                        str(pgdata),
                        "-l",
                        str(datadir / "server.log"),
                        "-w",
                        "-t",
                        str(int(READY_TIMEOUT_S)),
                        "-o",
                        " ".join(
                            [
                                "-c listen_addresses=127.0.0.1",
                                f"-p {port}",
                                f"-c unix_socket_directories={datadir}",
                                *(
                                    f"-c {setting}={'on' if durable else 'off'}"
                                    for setting in DURABILITY_SETTINGS
                                ),
                                "-c max_connections=200",
                            ]
                        ),
                        "start",
                    )
                except PostgresUnavailableError as e:
                    last_error = str(e)
                    continue
                server.admin_url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
                server._wait_ready()
                return server
        except BaseException:
            server.stop()
            raise
        server.stop()
        raise PostgresUnavailableError(f"PostgreSQL did not start: {last_error}")

    def _run(self, tool: str, *args: str) -> None:
        if self.bindir is None:  # pragma: no cover - external servers are not managed
            raise PostgresUnavailableError("not a private server")
        cmd = [str(self.bindir / tool), *args]
        if self.run_as is not None:
            if shutil.which("runuser"):
                cmd = ["runuser", "-u", self.run_as, "--", *cmd]
            else:  # no util-linux runuser (e.g. busybox): su with an explicit shell
                cmd = ["su", "-s", "/bin/sh", self.run_as, "-c", shlex.join(cmd)]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=READY_TIMEOUT_S + 30
        )
        if proc.returncode != 0:
            log = ""
            if self.datadir is not None and (self.datadir / "server.log").exists():
                log = (self.datadir / "server.log").read_text(errors="replace")[-2000:]
            raise PostgresUnavailableError(
                f"{tool} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]} {log}"
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                psycopg.connect(self.admin_url, connect_timeout=5).close()
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    raise PostgresUnavailableError(f"PostgreSQL never became ready: {e}") from e
                time.sleep(0.1)
            else:
                return

    def stop(self) -> None:
        """Stop a private server and delete its directory (external servers are left alone)."""
        if self.datadir is None:
            return
        pgdata = self.datadir / "data"
        if (pgdata / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailableError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(pgdata), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.datadir, ignore_errors=True)
        self.datadir = None

    # ---------------------------------------------------------------------- databases

    def _url_for(self, dbname: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{dbname}"

    def create_database(self, *, template: str | None = None) -> str:
        """A fresh empty database; returns its SQLAlchemy URL (``postgresql+psycopg://``)."""
        self._counter += 1
        name = f"edgetrust_t{os.getpid()}_{self._counter}_{secrets.token_hex(3)}"
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template or "template0")
        )
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(query)
        return _sqlalchemy_url(self._url_for(name))

    @staticmethod
    def libpq_url(url: str) -> str:
        """A SQLAlchemy ``postgresql+psycopg://`` URL as a libpq URL (for psycopg.connect)."""
        return url.replace("postgresql+psycopg://", "postgresql://", 1)

    def drop_database(self, url: str) -> None:
        name = url.rpartition("/")[2]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh database for one test, dropped afterwards."""
        url = self.create_database()
        try:
            yield url
        finally:
            self.drop_database(url)
