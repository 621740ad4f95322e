"""A real redis-server for the tests: on a free loopback port, in a temporary directory, with a password.

tests/conftest.py loads this module as a plugin, so any test can ask for the fixtures.
`redis_server` is one server for the whole run (stop() and start() it again on the same port to test an
outage); `redis_url` makes sure it runs and flushes it before each test."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import redis
except ImportError:  # pragma: no cover - the cluster extra is missing
    redis = None  # type: ignore[assignment]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path, executable: str) -> None:
        self.directory = directory
        self.executable = executable
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start it (again, on the same port, empty: no persistence) and wait until it answers."""
        if self.running:
            return self
        log = self.directory / "redis.log"
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--appendonly", "no", "--requirepass", self.password, "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with redis.Redis.from_url(self.url, socket_timeout=1) as client:
                    client.ping()
                return self
            except redis.ConnectionError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    output = log.read_text() if log.exists() else ""
                    raise RuntimeError(f"redis-server did not start: {output}") from exc
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    executable = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                                   else None)
    if executable is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server): the Redis tests need a real one")
    if redis is None:
        pytest.skip("the redis client is not installed (pip install 'mofaclaw[cluster]')")
    with tempfile.TemporaryDirectory(prefix="mofaclaw-redis-") as directory:
        server = RedisServer(Path(directory), executable).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL (with its password) of the running, empty test server."""
    redis_server.start()
    redis_server.flush()
    return redis_server.url
