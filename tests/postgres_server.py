"""A real PostgreSQL server for the tests, from Debian's binaries, in a temporary directory; a fresh database per test.

tests/conftest.py loads this module as a plugin, so any test can ask for `postgres_server` or `postgres_dsn`.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "mofaclaw"
PASSWORD = "s3cret-Pw_for/tests"  # has URL-special characters, so DSN quoting is exercised too
_PASSWORD_IN_URL = "s3cret-Pw_for%2Ftests"
_SYSTEM_USER = "postgres"  # initdb and postgres refuse to run as root


def binaries() -> Path | None:
    """The bin directory of the newest PostgreSQL installed from Debian's packages."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    numbered = [p for p in found if p.parent.name.split(".")[0].isdigit()]
    return max(numbered, key=lambda p: tuple(int(x) for x in p.parent.name.split(".")), default=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One cluster: `dsn` names its `postgres` database as a password-authenticated user that may create
    databases; `stop()` and `start()` take it down and bring it back on the same port with the same data."""

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self._as_root = os.geteuid() == 0
        self._root = Path(tempfile.mkdtemp(prefix="mofaclaw-pg-"))
        self._data = self._root / "data"
        self._sockets = self._root / "sockets"
        self._log = self._root / "server.log"
        self.port = _free_port()
        self.running = False
        self._databases = itertools.count(1)

    @property
    def data_dir(self) -> Path:
        return self._data

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{USER}:{_PASSWORD_IN_URL}@127.0.0.1:{self.port}/{database}"

    def init(self) -> PostgresServer:
        self._sockets.mkdir()
        if self._as_root:
            account = pwd.getpwnam(_SYSTEM_USER)
            for path in (self._root, self._sockets):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--no-locale")
        self.start()
        self.sql(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
        return self

    def start(self) -> None:
        # fsync and friends off: the tests never survive a power cut, and want speed.
        options = (f"-p {self.port} -h 127.0.0.1 -k {self._sockets} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self._data), "-l", str(self._log), "-o", options, "-w", "-t", "60", "start")
        self.running = True

    def stop(self) -> None:
        """A fast shutdown: connected clients are cut off, as when the database server goes away."""
        self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "-t", "60", "stop")
        self.running = False

    def sql(self, statement: str) -> None:
        """Run one statement as the superuser, over the private unix socket."""
        subprocess.run([str(self._bin / "psql"), "-h", str(self._sockets), "-p", str(self.port), "-U", "postgres",
                        "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", statement],
                       check=True, capture_output=True, timeout=60)

    def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(self._databases)}"
        self.sql(f"CREATE DATABASE {name} OWNER {USER}")
        return name

    def drop_database(self, name: str) -> None:
        if self.running:
            self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        try:
            if self.running:
                self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "-w", "-t", "60", "stop")
                self.running = False
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if self._as_root:
            command = ["runuser", "-u", _SYSTEM_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self._root)
        if result.returncode != 0:
            log = self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole run (skipped when PostgreSQL is not installed)."""
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            pytest.skip("running as root needs the 'postgres' system user (from Debian's postgresql package)")
    server = PostgresServer(bin_dir)
    try:
        yield server.init()
    finally:
        server.close()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """The DSN of a database of its own for this test, dropped after it."""
    if not postgres_server.running:  # a test that stopped the server and failed before starting it again
        postgres_server.start()
    name = postgres_server.create_database()
    yield postgres_server.dsn_for(name)
    if not postgres_server.running:
        postgres_server.start()
    postgres_server.drop_database(name)
