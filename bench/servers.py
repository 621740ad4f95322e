"""The processes a benchmark talks to: the scripted upstream, the bare relay, mofaclaw gateway, nanobot serve.

Each runs as its own process with its output in a log file (a reader thread in the load generator
would compete with it for the GIL), and is ready when its "ready" line appears or /health answers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NANOBOT = ROOT / "bench" / ".venvs" / "nanobot" / "bin" / "nanobot"
HOST = "127.0.0.1"
UPSTREAM_MODEL = "test-model"


@dataclass
class Server:
    """A running server and how to talk to it: its model name and the body field naming a conversation."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    model: str = UPSTREAM_MODEL
    session_field: str | None = None  # "conversation_id" (mofaclaw), "session_id" (nanobot)
    host: str = HOST

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def body(self, text: str, session: str | None = None, stream: bool = False) -> bytes:
        data: dict[str, object] = {"model": self.model, "messages": [{"role": "user", "content": text}]}
        if stream:
            data["stream"] = True
        if session is not None and self.session_field is not None:
            data[self.session_field] = session
        return json.dumps(data).encode()

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def health(port: int, path: str = "/health", host: str = HOST) -> int:
    """Status of GET path on a fresh connection, 0 when nothing listens yet (blocking, cheap to poll)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return 0
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})})


def _wait_line(proc: subprocess.Popen[bytes], log: Path, pattern: str, timeout: float) -> re.Match[str]:
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := regex.search(log.read_text(errors="replace")):
            return match
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError(f"{' '.join(map(str, proc.args))} did not start:\n{log.read_text(errors='replace')}")


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60.0,
                 interval: float = 0.005) -> float:
    """Poll /health until 200; the monotonic time it first answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(port) == 200:
            return time.monotonic()
        if proc.poll() is not None:
            break
        time.sleep(interval)
    proc.kill()
    raise RuntimeError(f"{' '.join(map(str, proc.args))} never became healthy:\n{log.read_text(errors='replace')}")


def start_upstream(workdir: Path, token_delay: float = 0.0) -> Server:
    log = workdir / f"upstream-{token_delay:g}.log"
    cmd = [sys.executable, str(ROOT / "tests" / "upstream.py"), "--port", "0", "--token-delay", str(token_delay)]
    proc = _spawn(cmd, log)
    port = int(_wait_line(proc, log, r"listening on http://[\d.]+:(\d+)/v1", 30).group(1))
    return Server("direct", proc, port, log)


def start_relay(workdir: Path, upstream: Server) -> Server:
    log = workdir / f"relay-{upstream.port}.log"
    proc = _spawn([sys.executable, str(ROOT / "bench" / "relay.py"), "--upstream", upstream.url], log)
    port = int(_wait_line(proc, log, r"relay ready on http://[\d.]+:(\d+)/v1", 30).group(1))
    return Server("relay", proc, port, log)


def gateway_config(upstream_url: str, max_concurrent_turns: int = 1024) -> str:
    return (f'[agents.defaults]\nmodel = "scripted/{UPSTREAM_MODEL}"\nmax_concurrent_turns = {max_concurrent_turns}\n\n'
            f'[providers.scripted]\napi_base = "{upstream_url}"\napi_key = "x"\n\n'
            "[heartbeat]\nenabled = false\n\n[cron]\nenabled = false\n")


def gateway_command(variant: str | None = None) -> list[str]:
    """The command that runs `mofaclaw gateway`, or the same with a proposed change (bench/variants.py)."""
    if variant:
        return [sys.executable, str(ROOT / "bench" / "variants.py"), variant, "gateway"]
    return [sys.executable, "-m", "mofaclaw", "gateway"]


def start_gateway(workdir: Path, upstream: Server | None, config: str | None = None, port: int = 0,
                  variant: str | None = None) -> Server:
    """`mofaclaw gateway` with a fresh MOFACLAW_HOME; `config` replaces the default (scripted upstream)."""
    home = Path(tempfile.mkdtemp(prefix="mofaclaw-", dir=workdir))
    assert config is not None or upstream is not None
    (home / "config.toml").write_text(config if config is not None else gateway_config(upstream.url))  # type: ignore[union-attr]
    log = home / "gateway.log"
    proc = _spawn([*gateway_command(variant), "--port", str(port)], log,
                  {"MOFACLAW_HOME": str(home)})
    bound = int(_wait_line(proc, log, r"gateway ready on http://[\d.]+:(\d+)/v1", 60).group(1))
    return Server("gateway", proc, bound, log, model="mofaclaw", session_field="conversation_id")


def nanobot_available() -> bool:
    return NANOBOT.is_file()


def nanobot_config(workdir: Path, upstream_url: str, port: int) -> Path:
    home = Path(tempfile.mkdtemp(prefix="nanobot-", dir=workdir))
    config = {
        "agents": {"defaults": {"model": UPSTREAM_MODEL, "provider": "custom", "workspace": str(home / "workspace")}},
        "providers": {"custom": {"apiKey": "x", "apiBase": upstream_url}},
        "api": {"host": HOST, "port": port, "timeout": 120},
    }
    path = home / "config.json"
    path.write_text(json.dumps(config))
    return path


def spawn_nanobot(config: Path) -> tuple[subprocess.Popen[bytes], Path]:
    # HOME too: nanobot keeps sessions and history under ~/.nanobot whatever the config says.
    log = config.parent / "nanobot.log"
    env = {"HOME": str(config.parent)}
    return _spawn([str(NANOBOT), "serve", "--config", str(config)], log, env), log


def start_nanobot(workdir: Path, upstream: Server) -> Server:
    port = free_port()
    proc, log = spawn_nanobot(nanobot_config(workdir, upstream.url, port))
    wait_healthy(proc, port, log)
    return Server("nanobot", proc, port, log, session_field="session_id")


class Fleet:
    """The servers of one benchmark run, stopped together (last started, first stopped)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._servers: list[Server] = []

    def add(self, server: Server) -> Server:
        self._servers.append(server)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        self._servers.remove(server)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
