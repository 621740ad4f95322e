"""One live session with one MCP server over the official SDK: connect, list, call, and notice its end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import mcp_types as types
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from mofaclaw import __version__
from mofaclaw.errors import ToolError
from mofaclaw.mcp.settings import McpServerSettings

log = logging.getLogger(__name__)

CLIENT_INFO = types.Implementation(name="mofaclaw", version=__version__)
# At least this long for the handshake and listings: a server started with npx or uvx may first install itself.
CONNECT_TIMEOUT = 30.0


class McpConnection:
    """A connected server. `closed` is set when the connection ends (the process died, the stream broke);
    `changed` when the server says its tool list changed."""

    def __init__(self, settings: McpServerSettings) -> None:
        self.settings = settings
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()
        self.client: Client | None = None

    @property
    def _client(self) -> Client:
        if self.client is None or self.closed.is_set():
            raise ToolError(f"MCP server '{self.settings.name}' is not connected")
        return self.client

    async def list_tools(self) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await self._request(self._client.list_tools(cursor=cursor))
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def list_prompts(self) -> list[types.Prompt]:
        if not self._client.server_capabilities.prompts:
            return []
        return (await self._request(self._client.list_prompts())).prompts

    async def list_resources(self) -> list[types.Resource]:
        if not self._client.server_capabilities.resources:
            return []
        return (await self._request(self._client.list_resources())).resources

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        return await self._request(self._client.read_resource(uri))

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return await self._request(self._client.call_tool(name, arguments,
                                                          read_timeout_seconds=self.settings.timeout), name)

    async def _request(self, request: Any, what: str = "") -> Any:
        """Await one request, turning the SDK's failures into one-line ToolErrors. A request cancelled by
        its caller (the turn was cancelled) is cancelled on the server too: the SDK sends
        notifications/cancelled, as it does when the timeout runs out."""
        server = self.settings.name
        try:
            return await request
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                raise ToolError(f"{what or 'the request'} on MCP server '{server}' timed out after "
                                f"{self.settings.timeout:g}s and was cancelled") from None
            if exc.code == types.CONNECTION_CLOSED:
                self.closed.set()
                raise ToolError(f"MCP server '{server}' closed the connection; reconnecting") from None
            raise ToolError(f"MCP server '{server}': {exc.message}") from None
        except ValidationError:
            raise ToolError(f"MCP server '{server}' sent a malformed answer") from None
        except Exception as exc:  # the transport failing under the request (an HTTP server gone)
            self.closed.set()
            raise ToolError(f"MCP server '{server}' is unreachable: {describe(exc)}") from None

    async def _on_message(self, message: Any) -> None:
        # Runs inside the SDK's receive loop: only set flags here, never send a request.
        if isinstance(message, types.ToolListChangedNotification):
            self.changed.set()
        elif isinstance(message, Exception):  # a message that did not parse; a lost connection ends the session
            log.debug("MCP server %s: bad message: %s", self.settings.name, describe(message))


@asynccontextmanager
async def connect(settings: McpServerSettings, errlog: IO[str]) -> AsyncIterator[McpConnection]:
    """Start (stdio) or reach (HTTP) the server and open a session; leaving stops a stdio server:
    stdin closed, then SIGTERM, then SIGKILL to its whole process group (the SDK's shutdown sequence)."""
    connection = McpConnection(settings)
    # "auto": the newest protocol a server speaks, else the initialize handshake. The SDK's response cache
    # is off so that a changed tool list is read afresh.
    client = Client(_transport(settings, errlog, connection.closed), mode="auto", cache=None,
                    read_timeout_seconds=max(settings.timeout, CONNECT_TIMEOUT), client_info=CLIENT_INFO,
                    message_handler=connection._on_message)
    # The handshake is bounded by read_timeout_seconds: a server that never answers fails it.
    async with client:
        connection.client = client
        listener = None
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            listener = asyncio.create_task(_listen_for_changes(client, connection))
        try:
            yield connection
        finally:
            connection.closed.set()
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)


async def _listen_for_changes(client: Client, connection: McpConnection) -> None:
    """Since protocol 2026-07-28 list changes come on a subscriptions/listen stream, not as notifications."""
    try:
        async with client.listen(tools_list_changed=True) as subscription:
            async for _event in subscription:
                connection.changed.set()
    except (MCPError, ListenNotSupportedError, SubscriptionLost, TimeoutError) as exc:
        log.debug("MCP server %s: no tool list changes: %s", connection.settings.name, describe(exc))


@asynccontextmanager
async def _transport(settings: McpServerSettings, errlog: IO[str], closed: asyncio.Event) -> AsyncIterator[Any]:
    if settings.transport == "stdio":
        params = StdioServerParameters(command=settings.command, args=list(settings.args), env=dict(settings.env),
                                       cwd=settings.cwd or None)
        async with stdio_client(params, errlog=errlog) as (read, write):
            yield _Watched(read, closed), write
    elif settings.transport == "sse":
        async with sse_client(settings.url, headers=dict(settings.headers), timeout=settings.timeout) as (read, write):
            yield _Watched(read, closed), write
    else:
        async with create_mcp_http_client(headers=dict(settings.headers)) as http, \
                streamable_http_client(settings.url, http_client=http) as (read, write):
            yield _Watched(read, closed), write


class _Watched:
    """The transport's read stream, setting `closed` when it ends: how a dead server is noticed at once."""

    def __init__(self, inner: Any, closed: asyncio.Event) -> None:
        self._inner = inner
        self._closed = closed

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except BaseException:
            self._closed.set()
            raise

    async def __aenter__(self) -> _Watched:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        self._closed.set()
        return await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def describe(exc: BaseException, settings: McpServerSettings | None = None) -> str:
    """One line for an exception, looking inside the exception groups anyio's task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, FileNotFoundError) and settings is not None and settings.transport == "stdio":
        if settings.cwd and not Path(settings.cwd).is_dir():
            return f"working directory not found: {settings.cwd}"
        return f"command not found: {settings.command}"  # uvloop's error does not name the file
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
