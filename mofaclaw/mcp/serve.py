"""`mofaclaw mcp serve`: the agent itself as an MCP server, so desktop clients and other agents can
delegate to it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as McpToolError

from mofaclaw import __version__
from mofaclaw.bus.events import InboundMessage
from mofaclaw.errors import MofaclawError

if TYPE_CHECKING:
    from mofaclaw.agent.loop import AgentLoop

DEFAULT_CONVERSATION = "mcp:default"


def session_key(conversation: str) -> str:
    """A conversation name as a session key: "work" is "mcp:work"; "cli:direct" continues that one."""
    conversation = conversation.strip() or DEFAULT_CONVERSATION
    return conversation if ":" in conversation else f"mcp:{conversation}"


def build_server(agent: AgentLoop) -> MCPServer:
    server: MCPServer = MCPServer(
        "mofaclaw", version=__version__,
        instructions="mofaclaw is a personal AI agent with a workspace, memory and tools (files, shell, web, "
                     "scheduling). Delegate a task or a question to it with `ask`.")

    async def ask(message: str, conversation: str = DEFAULT_CONVERSATION) -> str:
        """Send a message to the mofaclaw agent and return its answer. The agent can use its tools (files,
        shell, web, schedules) and remembers the conversation: messages with the same `conversation` name
        share their history."""
        if not message.strip():
            raise McpToolError("the message is empty")
        key = session_key(conversation)
        inbound = InboundMessage("mcp", "mcp-client", key.partition(":")[2], message, session_key_override=key)
        try:
            return await agent.ask(inbound)
        except MofaclawError as exc:
            raise McpToolError(str(exc)) from None

    server.add_tool(ask, name="ask")
    return server


async def serve_stdio(agent: AgentLoop) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin. stdout carries only the protocol."""
    await build_server(agent).run_stdio_async()
