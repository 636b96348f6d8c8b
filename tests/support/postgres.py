"""A throwaway PostgreSQL server for the test session: its own data folder and socket folder in a
temp dir, its own local port, started once and stopped at the end.

PostgreSQL refuses to run as root, and the tests run as root here and in CI: initdb and pg_ctl
then run as the `postgres` system user, which owns the temp dir. Each test gets a schema of its
own (`search_path` in the DSN): creating one is a millisecond, a database from a template ten.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

USER = "gridbot"
PASSWORD = "pg-secret-9f3a"  # tests check that it never shows in a log or an error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for version in ("17", "16", "15", "14"):
        p = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
        if p.exists():
            return str(p)
    raise RuntimeError(f"{name} not found: install Debian's postgresql package (make setup-test does)")


@dataclass
class PgServer:
    root: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/gridbot"

    def schema_dsn(self, schema: str) -> str:
        return f"{self.dsn}?search_path={schema}"

    @classmethod
    def start(cls, durable: bool = False) -> "PgServer":
        """`durable`: the server's own fsync on, as in production (for measurements)."""
        root = Path(tempfile.mkdtemp(prefix="gridbot-pg-"))
        data, sock = root / "data", root / "sock"
        sock.mkdir()
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD)
        if os.getuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(sock, "postgres")
            shutil.chown(pwfile, "postgres")
        port = _free_port()
        subprocess.run(_as_owner([_bin("initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
                                  "-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"]),
                       check=True, capture_output=True)
        # A test server: durability of the server itself is not what is tested here (the
        # bot's own acknowledgement after COMMIT is), and fsync off makes the suite twice as fast.
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=128MB"
        if not durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                                  "-w", "-t", "60", "start"]), check=True, capture_output=True)
        server = cls(root, port)
        server._sql("CREATE DATABASE gridbot", db="postgres")
        return server

    def _sql(self, sql: str, db: str = "gridbot") -> None:
        import asyncio

        async def run() -> None:
            conn = await asyncpg.connect(f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{db}")
            try:
                await conn.execute(sql)
            finally:
                await conn.close()
        asyncio.run(run())

    def new_schema(self) -> str:
        """A fresh, empty schema; returns the DSN that uses it."""
        name = "t_" + uuid.uuid4().hex[:12]
        self._sql(f"CREATE SCHEMA {name}")
        return self.schema_dsn(name)

    def stop(self) -> None:
        data = self.root / "data"
        try:
            subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "20", "stop"]),
                           capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass
        # Still there (pg_ctl could not run or did not finish): the postmaster is told directly;
        # SIGQUIT is PostgreSQL's immediate shutdown, which ends its children too.
        try:
            pid = int((data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)
