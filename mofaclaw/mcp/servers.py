"""The configured MCP servers as a long-running part of the runtime: connected, kept alive, their tools
kept in the agent's registry."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mofaclaw.agent.tools.base import ToolRegistry
from mofaclaw.errors import ToolError
from mofaclaw.mcp.settings import McpServerSettings

if TYPE_CHECKING:  # the SDK is imported only when a server is configured: it costs start-up time
    from mofaclaw.mcp.connection import McpConnection
    from mofaclaw.mcp.tools import McpTool

log = logging.getLogger(__name__)

FIRST_RETRY = 0.5  # seconds before reconnecting a server that died; doubles up to MAX_RETRY
MAX_RETRY = 30.0


@dataclass
class ServerState:
    settings: McpServerSettings
    state: str = "connecting"  # connecting, connected, reconnecting, failed, disabled
    last_error: str = ""
    attempts: int = 0  # connection attempts so far
    connection: McpConnection | None = None
    tools: dict[str, McpTool] = field(default_factory=dict)  # by agent-side name
    attempted: asyncio.Event = field(default_factory=asyncio.Event)  # the first attempt is over


class McpServers:
    """`run()` serves until cancelled: each enabled server connects, reconnects with back-off when it dies,
    and its tools follow its `notifications/tools/list_changed`. Cancelling stops every server."""

    def __init__(self, servers: Sequence[McpServerSettings], registry: ToolRegistry,
                 log_dir: Path | None = None) -> None:
        self.registry = registry
        self.log_dir = log_dir  # each stdio server's stderr goes to mcp-<name>.log there; None: our stderr
        self.states = {s.name: ServerState(s, state="connecting" if s.enabled else "disabled") for s in servers}
        enabled = [s.name for s in servers if s.enabled]
        if enabled:
            from mofaclaw.mcp.tools import ReadResourceTool

            registry.register(ReadResourceTool(enabled, self.connection_of))

    def connection_of(self, name: str) -> McpConnection:
        state = self.states[name]
        if state.connection is None or state.connection.closed.is_set():
            why = f" ({state.last_error})" if state.last_error else ""
            raise ToolError(f"MCP server '{name}' is not connected{why}; it is retried in the background, "
                            "try again in a few seconds")
        return state.connection

    async def run(self) -> None:
        if not any(s.settings.enabled for s in self.states.values()):
            return
        # Importing the SDK takes a second or two: in a thread, so the event loop keeps serving meanwhile.
        await asyncio.to_thread(importlib.import_module, "mofaclaw.mcp.results")
        await asyncio.to_thread(importlib.import_module, "mofaclaw.mcp.connection")
        async with asyncio.TaskGroup() as tg:
            for state in self.states.values():
                if state.settings.enabled:
                    tg.create_task(self._supervise(state), name=f"mcp:{state.settings.name}")

    async def wait_ready(self) -> None:
        """Until every eager server has connected or failed its first attempt (bounded by its timeout)."""
        eager = [s.attempted.wait() for s in self.states.values()
                 if s.settings.enabled and s.settings.startup == "eager"]
        await asyncio.gather(*eager)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[McpServers]:
        """run() in the background for the body, eager servers connected before it starts."""
        task = asyncio.create_task(self.run(), name="mcp")
        ready = asyncio.create_task(self.wait_ready())
        try:
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            yield self
        finally:
            ready.cancel()
            task.cancel()
            await asyncio.gather(ready, return_exceptions=True)
            error = (await asyncio.gather(task, return_exceptions=True))[0]
            if isinstance(error, Exception):
                raise error

    async def _supervise(self, state: ServerState) -> None:
        from mofaclaw.mcp.connection import connect, describe

        name = state.settings.name
        delay = FIRST_RETRY
        with ExitStack() as files:
            errlog = self._errlog(name, files)
            while True:
                mark = None if errlog is sys.stderr else _position(errlog)
                state.attempts += 1
                try:
                    async with connect(state.settings, errlog) as connection:
                        state.connection = connection
                        await self._sync_tools(state, connection)
                        was = state.state
                        state.state, state.last_error = "connected", ""
                        state.attempted.set()
                        delay = FIRST_RETRY
                        log.info("MCP server %s %s: %d tools", name,
                                 "reconnected" if was == "reconnecting" else "connected", len(state.tools))
                        await self._follow(state, connection)
                    error = "the server closed the connection"
                except ToolError as exc:
                    error = str(exc)
                except Exception as exc:  # task boundary: one server's failure must not stop the others
                    error = describe(exc, state.settings)
                finally:
                    state.connection = None
                error += _stderr_tail(errlog, mark)
                first_failure = state.state in ("connecting", "connected")
                state.state = "reconnecting" if state.state in ("connected", "reconnecting") else "failed"
                state.last_error = error
                state.attempted.set()
                # One line per outage, not one per retry.
                (log.warning if first_failure else log.debug)(
                    "MCP server %s %s: %s; retrying in %gs", name,
                    "disconnected" if state.state == "reconnecting" else "failed to start", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY)

    async def _follow(self, state: ServerState, connection: McpConnection) -> None:
        """Until the connection ends, re-read the tool list whenever the server says it changed."""
        while True:
            await _first(connection.changed, connection.closed)
            if connection.closed.is_set():
                return
            connection.changed.clear()
            try:
                await self._sync_tools(state, connection)
            except ToolError as exc:
                log.warning("MCP server %s: cannot re-read its tools: %s", state.settings.name, exc)
            else:
                log.info("MCP server %s: tool list changed: %d tools", state.settings.name, len(state.tools))

    async def _sync_tools(self, state: ServerState, connection: McpConnection) -> None:
        import jsonschema  # here: a gateway without MCP servers never needs it (~3 MB, ~0.1 s)

        from mofaclaw.mcp.tools import McpTool

        name = state.settings.name
        fresh: dict[str, McpTool] = {}
        for remote in await connection.list_tools():
            if not state.settings.allows(remote.name):
                continue
            tool = McpTool(name, remote, self.connection_of)
            taken = self.registry.get(tool.name)
            if tool.name in fresh or (taken is not None and tool.name not in state.tools):
                log.warning("MCP server %s: tool %s skipped: the name %s is taken", name, remote.name, tool.name)
                continue
            try:
                jsonschema.Draft202012Validator.check_schema(dict(tool.parameters))
            except jsonschema.SchemaError as exc:
                log.warning("MCP server %s: tool %s skipped: invalid input schema: %s", name, remote.name,
                            exc.message)
                continue
            fresh[tool.name] = tool
        for gone in state.tools.keys() - fresh.keys():
            self.registry.unregister(gone)
        for tool_name, tool in fresh.items():
            old = state.tools.get(tool_name)
            if old is None or not old.same_as(tool):
                self.registry.register(tool)
        state.tools = fresh

    def _errlog(self, name: str, files: ExitStack) -> IO[str]:
        if self.log_dir is None:
            return sys.stderr
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return files.enter_context((self.log_dir / f"mcp-{name}.log").open("a+", encoding="utf-8"))


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def _position(errlog: IO[str]) -> int | None:
    try:
        return errlog.seek(0, 2) if errlog.seekable() else None
    except OSError:
        return None


def _stderr_tail(errlog: IO[str], mark: int | None) -> str:
    """The last line the server wrote to stderr in this attempt: often the reason it failed."""
    if mark is None:
        return ""
    try:
        errlog.seek(mark)
        lines = [line.strip() for line in errlog.read(64_000).splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    return f" (its stderr: {lines[-1][:200]})" if lines else ""
