"""Messages as JSON text, for rows that hold a whole run of them (paused turns, stored responses)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from mofaclaw.types import ChatMessage, ToolCall


def dump_messages(messages: Sequence[ChatMessage]) -> str:
    return json.dumps([_dump(m) for m in messages])


def load_messages(text: str) -> tuple[ChatMessage, ...]:
    return tuple(_load(item) for item in json.loads(text))


def join_turns(newest_first: Iterable[str]) -> list[ChatMessage] | None:
    """A response chain's messages in order, from each turn's JSON newest first; None for no turn at all."""
    turns = [load_messages(text) for text in newest_first]
    if not turns:
        return None
    return [m for turn in reversed(turns) for m in turn]


def dump_calls(calls: Sequence[ToolCall]) -> str:
    return json.dumps([{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls])


def load_calls(text: str) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(**c) for c in json.loads(text))


def _dump(message: ChatMessage) -> dict[str, Any]:
    item: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        item["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls]
    if message.tool_call_id is not None:
        item["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        item["name"] = message.name
    return item


def _load(item: dict[str, Any]) -> ChatMessage:
    calls = tuple(ToolCall(**c) for c in item.get("tool_calls") or ())
    return ChatMessage(item["role"], item.get("content"), calls, item.get("tool_call_id"), item.get("name"))
