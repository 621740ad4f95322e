"""The message tool and the standard tool set: what goes on the bus, and which tools exist."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema

from mofaclaw.agent.tools.base import ToolContext, ToolRegistry
from mofaclaw.agent.tools.builtin import build_tools
from mofaclaw.agent.tools.message import MessageTool
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.bus.events import OutboundMessage
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.types import ToolCall

CTX = ToolContext(channel="telegram", chat_id="42", session_key="telegram:42", request_id="req-1")


async def send(bus: InMemoryBus, **args: object) -> str:
    return await ToolRegistry([MessageTool(bus)]).execute(ToolCall("call-1", "message", json.dumps(args)), CTX)


async def next_message(bus: InMemoryBus, channel: str) -> OutboundMessage:
    async with asyncio.timeout(5):
        return await bus.subscribe(channel).get()


def subscribed_bus(*channels: str) -> InMemoryBus:
    bus = InMemoryBus()
    for channel in channels:
        bus.subscribe(channel)
    return bus


async def test_message_goes_to_the_current_chat_by_default() -> None:
    bus = subscribed_bus("telegram")
    result = await send(bus, content="halfway there")
    assert result == "Message sent to telegram:42."
    out = await next_message(bus, "telegram")
    assert (out.channel, out.chat_id, out.content, out.kind) == ("telegram", "42", "halfway there", "message")
    assert out.request_id is None  # not the turn's answer


async def test_message_to_another_chat_and_channel() -> None:
    bus = subscribed_bus("telegram", "slack")
    assert await send(bus, content="hi", chat_id="7") == "Message sent to telegram:7."
    assert (await next_message(bus, "telegram")).chat_id == "7"
    assert await send(bus, content="hi", channel="slack", chat_id="C1") == "Message sent to slack:C1."
    out = await next_message(bus, "slack")
    assert (out.channel, out.chat_id) == ("slack", "C1")


async def test_another_channel_needs_a_chat_id() -> None:
    bus = subscribed_bus("slack")
    result = await send(bus, content="hi", channel="slack")
    assert result == "Error: chat_id is required to send to channel 'slack' from 'telegram'"
    assert bus.subscribe("slack").empty()


async def test_empty_content_is_refused() -> None:
    assert (await send(InMemoryBus(), content="")).startswith("Error: invalid arguments for message")


def test_standard_tool_set(tmp_path: Path) -> None:
    names = [tool.name for tool in build_tools(ToolSettings(tmp_path), InMemoryBus())]
    assert names == ["read_file", "write_file", "edit_file", "list_dir", "exec", "web_fetch", "web_search", "message"]
    without_exec = [tool.name for tool in build_tools(ToolSettings(tmp_path, exec_enabled=False), InMemoryBus())]
    assert "exec" not in without_exec and len(without_exec) == 7


def test_every_tool_schema_is_valid_and_closed(tmp_path: Path) -> None:
    registry = ToolRegistry(build_tools(ToolSettings(tmp_path), InMemoryBus()))
    for spec in registry.specs():
        jsonschema.Draft202012Validator.check_schema(spec.parameters)
        assert spec.description and spec.parameters["type"] == "object"
        assert spec.parameters["additionalProperties"] is False


async def test_files_are_attached_from_the_workspace_only(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "chart.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("no")
    tool = MessageTool(subscribed_bus("telegram"), ToolSettings(workspace=workspace))
    bus = tool.bus
    registry = ToolRegistry([tool])

    def call(media: list[str]) -> ToolCall:
        return ToolCall("call-1", "message", json.dumps({"content": "see", "media": media}))

    assert await registry.execute(call(["chart.png"]), CTX) == "Message sent to telegram:42 with 1 file(s)."
    out = await next_message(bus, "telegram")  # type: ignore[arg-type]
    assert out.media == (str((workspace / "chart.png").resolve()),)
    refused = await registry.execute(call(["../secret.txt"]), CTX)
    assert refused.startswith("Error: path '../secret.txt' resolves to") and "outside the workspace" in refused
    missing = await registry.execute(call(["nope.png"]), CTX)
    assert missing.startswith("Error: cannot attach 'nope.png'")
