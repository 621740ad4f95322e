"""`mofaclaw mcp list`: connect to each configured server briefly and report what it offers."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from mofaclaw.mcp.connection import connect, describe
from mofaclaw.mcp.settings import McpServerSettings
from mofaclaw.mcp.tools import agent_tool_name


@dataclass
class ServerReport:
    settings: McpServerSettings
    state: str  # connected, failed, disabled
    tools: list[str] = field(default_factory=list)  # as the agent sees them
    hidden: list[str] = field(default_factory=list)  # left out by the allow-list
    prompts: list[str] = field(default_factory=list)
    resources: int = 0
    error: str = ""


async def probe_all(servers: Sequence[McpServerSettings]) -> list[ServerReport]:
    return list(await asyncio.gather(*(probe(s) for s in servers)))


async def probe(settings: McpServerSettings) -> ServerReport:
    if not settings.enabled:
        return ServerReport(settings, "disabled")
    # The server's stderr is kept aside: its last line often says why it failed.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        try:
            # A task of its own: the SDK's task groups must open and close inside the timeout's task.
            return await asyncio.wait_for(_query(settings, errlog), settings.timeout + 5)
        except Exception as exc:  # the report of one server must not stop the others
            errlog.seek(0)
            lines = [line.strip() for line in errlog.read(64_000).splitlines() if line.strip()]
            tail = f" (its stderr: {lines[-1][:200]})" if lines else ""
            return ServerReport(settings, "failed", error=describe(exc, settings) + tail)


async def _query(settings: McpServerSettings, errlog: IO[str]) -> ServerReport:
    async with connect(settings, errlog) as connection:
        report = ServerReport(settings, "connected")
        for tool in await connection.list_tools():
            if settings.allows(tool.name):
                report.tools.append(agent_tool_name(settings.name, tool.name))
            else:
                report.hidden.append(tool.name)
        report.prompts = [p.name for p in await connection.list_prompts()]
        report.resources = len(await connection.list_resources())
        return report


def render(report: ServerReport) -> list[str]:
    """A few plain lines per server: no secret ever (env and headers are not shown, URLs lose their query)."""
    s = report.settings
    head = f"{s.name}  {s.transport} {s.target}  {report.state}"
    lines = [head + (f": {report.error}" if report.error else "")]
    if report.state == "connected":
        lines.append(f"  tools: {', '.join(report.tools) or '(none)'}")
        if report.hidden:
            lines.append(f"  hidden by the allow-list: {', '.join(report.hidden)}")
        if report.prompts:
            lines.append(f"  prompts: {', '.join(report.prompts)}")
        if report.resources:
            lines.append(f"  resources: {report.resources} (read with the mcp_read_resource tool)")
    return lines
