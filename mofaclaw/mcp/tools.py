"""MCP tools as agent tools: `mcp_<server>_<tool>` for each server tool, and `mcp_read_resource`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mofaclaw.agent.tools.base import ToolContext
from mofaclaw.errors import ToolError

if TYPE_CHECKING:  # the SDK loads off the event loop (McpServers.run): it takes seconds to import
    import mcp_types as types

    from mofaclaw.mcp.connection import McpConnection

MAX_NAME = 64  # providers accept tool names matching ^[a-zA-Z0-9_-]{1,64}$
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")

# The live connection of a server by its name; raises ToolError while it is not connected.
ConnectionOf = Callable[[str], "McpConnection"]


def agent_tool_name(server: str, tool: str) -> str:
    """`mcp_<server>_<tool>` in the charset providers accept; a long name keeps a hash of the full one,
    so two long names sharing a prefix still differ."""
    name = _UNSAFE.sub("_", f"mcp_{server}_{tool}")
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME - 9]}_{digest}"


class McpTool:
    """One tool of one server. It calls whichever connection the server has now, so a reconnect does not
    replace it."""

    def __init__(self, server: str, tool: types.Tool, connection_of: ConnectionOf) -> None:
        self.server = server
        self.remote_name = tool.name
        self.name = agent_tool_name(server, tool.name)
        self.description = tool.description or tool.title or f"{tool.name} (from MCP server {server})"
        self.parameters: Mapping[str, Any] = tool.input_schema
        self._connection_of = connection_of

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        from mofaclaw.mcp.results import tool_result_text

        connection = self._connection_of(self.server)
        return tool_result_text(await connection.call_tool(self.remote_name, args))

    def same_as(self, other: McpTool) -> bool:
        return (self.name, self.remote_name, self.description, self.parameters) == (
            other.name, other.remote_name, other.description, other.parameters)


class ReadResourceTool:
    name = "mcp_read_resource"
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "server": {"type": "string", "description": "The MCP server's name."},
            "uri": {"type": "string", "description": "The resource to read; empty: list the server's resources."},
        },
        "required": ["server"],
    }

    def __init__(self, servers: list[str], connection_of: ConnectionOf) -> None:
        self._servers = servers
        self._connection_of = connection_of
        self.description = ("Read a resource (a file, a record, a page) from an MCP server, or list its resources "
                            f"when uri is empty. Servers: {', '.join(servers)}.")

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        server, uri = args["server"], args.get("uri", "").strip()
        if server not in self._servers:
            raise ToolError(f"unknown MCP server '{server}'. Servers: {', '.join(self._servers)}")
        from mofaclaw.mcp.results import resource_list_text, resource_text

        connection = self._connection_of(server)
        if not uri:
            return resource_list_text(server, await connection.list_resources())
        return resource_text(await connection.read_resource(uri))
