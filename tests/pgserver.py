"""A real PostgreSQL for tests: one throwaway server per test session (initdb + pg_ctl, trust auth, a
Unix socket and 127.0.0.1 on a free port), a fresh database per test, stopped at the
end. PostgreSQL refuses to run as root, so under root the server runs as an
unprivileged user (``t2vpg``, created if missing). The parameter is skipped when no
PostgreSQL server binaries are installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "t2vpg"  # OS user that owns and runs the server when tests run as root
PG_ROLE = "t2v"  # database superuser created by initdb


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    host: str
    port: int
    root: Path

    def admin_dsn(self) -> str:
        return f"host={self.host} port={self.port} user={PG_ROLE} dbname=postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{PG_ROLE}@{self.host}:{self.port}/{dbname}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql/*/bin")
    prefix: list[str] = []
    if os.geteuid() == 0:
        if subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode != 0:
            made = subprocess.run(["useradd", "--system", "-M", "-s", "/usr/sbin/nologin", PG_USER], capture_output=True)
            # pytest-xdist: another worker may have created the user at the same moment
            if made.returncode != 0 and subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode != 0:
                raise RuntimeError(f"useradd {PG_USER} failed: {made.stderr.decode(errors='replace')}")
        prefix = ["runuser", "-u", PG_USER, "--"]
    # Not under pytest's tmp dir: that one is private to root, and the server user must reach it.
    root = Path(tempfile.mkdtemp(prefix="t2v-pg-"))
    data, log = root / "data", root / "server.log"
    if prefix:
        shutil.chown(root, user=PG_USER)
    port = _free_port()

    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], cwd=root, **kw)

    try:
        init = run(
            str(bindir / "initdb"), "-D", str(data), "-U", PG_ROLE, "--auth=trust", "-E", "UTF8",
            "--no-locale", "--no-sync", capture_output=True, text=True,
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        # The server inherits pg_ctl's stdout: never a pipe, or this call would not return.
        start = run(
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if start.returncode != 0:
            text = log.read_text(errors="replace") if log.exists() else "(no log)"
            pytest.fail(f"pg_ctl start failed:\n{text[-4000:]}")
        yield PgServer(host="127.0.0.1", port=port, root=root)
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database; its SQLAlchemy URL."""
    import psycopg

    name = f"t2v_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.url(name)
    with psycopg.connect(pg_server.admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
