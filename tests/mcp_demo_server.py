"""A small MCP server written with the official SDK, for the MCP tests: run over stdio as a script, or
served over streamable HTTP or SSE in-process (`http_app()`, `sse_app()`).

Tools: echo, add (structured output), picture (an image), pointer (a resource link), hang (records its
cancellation), crash (the process dies mid-call), grow (adds a tool and sends tools/list_changed),
drop_database (for allow-list tests), whoami (reads DEMO_TOKEN from its environment). A text resource
and a prompt. Options (stdio): --legacy announces list changes the 2025 way (mcp_legacy_proxy.py makes it
speak only that protocol); --pidfile PATH appends this process's pid; --marks DIR receives one file per
event ("hanging", "cancelled"); --stubborn keeps the process alive after stdin closes and ignores SIGTERM, with
a grandchild process, so only a kill of the process group ends it; --start-when PATH starts serving
only once PATH exists.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import TextResource

MARKS: Path | None = None
LEGACY = False  # announce list changes as notifications/tools/list_changed (run behind mcp_legacy_proxy.py)


def mark(event: str) -> None:
    if MARKS is not None:
        (MARKS / event).write_text(str(os.getpid()))


def build() -> MCPServer:
    server: MCPServer = MCPServer("demo", version="1.0")

    @server.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return f"demo says: {text}"

    @server.tool()
    def add(a: int, b: int) -> dict[str, int]:
        """Add two numbers."""
        return {"sum": a + b}

    @server.tool()
    def picture() -> list[types.ContentBlock]:
        """A tiny picture."""
        return [types.TextContent(text="here is a dot"),
                types.ImageContent(data=base64.b64encode(b"\x89PNG" + b"\0" * 12).decode(), mime_type="image/png")]

    @server.tool()
    def pointer() -> list[types.ContentBlock]:
        """Where the notes are."""
        return [types.ResourceLink(uri="demo://notes", name="notes", description="the team notes")]

    @server.tool()
    async def hang() -> str:
        """Never answers."""
        mark("hanging")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            mark("cancelled")
            raise
        return "woke up"

    @server.tool()
    def crash() -> str:
        """The server dies."""
        os._exit(3)

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Adds the tool `late`."""

        def late() -> str:
            """A tool that came later."""
            return "late tool here"

        server.add_tool(late)
        if LEGACY:  # as servers of the 2025 protocol do it
            await ctx.request_context.session.send_tool_list_changed()
        else:  # to subscriptions/listen streams (protocol 2026-07-28)
            await ctx.notify_tools_changed()
        return "grown"

    @server.tool()
    def drop_database() -> str:
        """Deletes everything."""
        mark("dropped")
        return "dropped"

    @server.tool()
    def whoami() -> str:
        """Who the server runs as."""
        return "token is " + ("set" if os.environ.get("DEMO_TOKEN") == "s3cret-token" else "missing")

    server.add_resource(TextResource(uri="demo://notes", name="notes", text="buy milk", mime_type="text/plain"))

    @server.prompt()
    def summarize(topic: str) -> str:
        """Summarize a topic."""
        return f"Summarize {topic}"

    return server


def http_app():  # type: ignore[no-untyped-def]
    return build().streamable_http_app()


def sse_app():  # type: ignore[no-untyped-def]
    return build().sse_app()


def _stubborn() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    _record_pid(child.pid)
    threading.Thread(target=time.sleep, args=(600,), daemon=False).start()


PIDFILE: Path | None = None


def _record_pid(pid: int) -> None:
    if PIDFILE is not None:
        with PIDFILE.open("a") as f:
            f.write(f"{pid}\n")


def main() -> None:
    global MARKS, PIDFILE, LEGACY
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", type=Path)
    parser.add_argument("--marks", type=Path)
    parser.add_argument("--stubborn", action="store_true")
    parser.add_argument("--legacy", action="store_true", help="announce list changes the 2025 way")
    parser.add_argument("--start-when", type=Path, help="answer nothing until this file exists (a slow start)")
    args = parser.parse_args()
    MARKS, PIDFILE, LEGACY = args.marks, args.pidfile, args.legacy
    _record_pid(os.getpid())
    while args.start_when is not None and not args.start_when.exists():
        time.sleep(0.02)
    if args.stubborn:
        _stubborn()
    build().run("stdio")


if __name__ == "__main__":
    main()
