"""Helpers for the MCP tests: the demo server's settings, an HTTP MCP server on loopback, process checks."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from mofaclaw.mcp.settings import McpServerSettings

DEMO = Path(__file__).with_name("mcp_demo_server.py")
LEGACY_PROXY = Path(__file__).with_name("mcp_legacy_proxy.py")


def demo_stdio(tmp_path: Path, name: str = "demo", *extra: str, legacy: bool = False,
               **overrides: Any) -> McpServerSettings:
    """The demo server over stdio, recording its pids and events under tmp_path; `legacy`: as a server
    of the 2025 protocol."""
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    args = (str(DEMO), "--pidfile", str(tmp_path / f"{name}.pids"), "--marks", str(marks), *extra)
    if legacy:
        args = (str(LEGACY_PROXY), sys.executable, *args, "--legacy")
    return McpServerSettings(name=name, transport="stdio", command=sys.executable, args=args,
                             **{"timeout": 10.0, **overrides})


def pids(tmp_path: Path, name: str = "demo") -> list[int]:
    path = tmp_path / f"{name}.pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Running (a zombie counts as gone: it is only waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is pid, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait for a condition that no event announces (a file written by another process)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@contextmanager
def http_mcp_server(app: Any, token: str, port: int = 0) -> Iterator[str]:
    """An MCP app under uvicorn on loopback, in its own thread, behind a bearer token; yields its URL."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (dict(scope["headers"]).get(b"authorization") != f"Bearer {token}".encode()):
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    sock = socket.create_server(("127.0.0.1", port))
    config = uvicorn.Config(guarded, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()  # the socket already listens: connections wait in its backlog until uvicorn accepts them
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()

