"""The standard tool set, built from the tool settings; spawn and cron are added by the runtime."""

from __future__ import annotations

from mofaclaw.agent.tools.base import Tool
from mofaclaw.agent.tools.filesystem import EditFileTool, ListDirTool, ReadFileTool, WriteFileTool
from mofaclaw.agent.tools.message import MessageTool
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.agent.tools.shell import ExecTool
from mofaclaw.agent.tools.web import WebFetchTool
from mofaclaw.agent.tools.websearch import WebSearchTool
from mofaclaw.bus.base import MessageBus


def build_tools(settings: ToolSettings, bus: MessageBus) -> list[Tool]:
    tools: list[Tool] = [
        ReadFileTool(settings),
        WriteFileTool(settings),
        EditFileTool(settings),
        ListDirTool(settings),
    ]
    if settings.exec_enabled:
        tools.append(ExecTool(settings))
    tools += [WebFetchTool(settings), WebSearchTool.from_settings(settings), MessageTool(bus, settings)]
    return tools
