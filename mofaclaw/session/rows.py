"""Rows to the shared dataclasses and the rules on them that every store (SQLite, PostgreSQL) applies alike."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from mofaclaw.session.base import ConversationInfo, StoredMessage
from mofaclaw.types import ChatMessage, ToolCall

# The columns the row helpers below read, and a conversation with its count and first user message:
# the same SQL for SQLite and PostgreSQL (each appends its own WHERE/ORDER BY with its own placeholders).
MESSAGE_COLUMNS = "id, role, content, tool_calls, tool_call_id, name, created_at"
CONVERSATION_SELECT = (
    "SELECT s.key, s.title, s.metadata, s.created_at, s.updated_at, "
    "(SELECT COUNT(*) FROM messages m WHERE m.session_key = s.key), "
    "(SELECT content FROM messages m WHERE m.session_key = s.key AND m.role = 'user' ORDER BY m.id LIMIT 1) "
    "FROM sessions s"
)

TITLE_LENGTH = 80
UNTITLED = "New chat"


def dump_calls(calls: tuple[ToolCall, ...]) -> str | None:
    """A message's tool calls as JSON, NULL when it has none."""
    if not calls:
        return None
    return json.dumps([{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls])


def message_row(message: ChatMessage) -> tuple[str, str | None, str | None, str | None, str | None]:
    """(role, content, tool_calls, tool_call_id, name): the columns of a stored message."""
    return message.role, message.content, dump_calls(message.tool_calls), message.tool_call_id, message.name


def stored_message(row: Sequence[Any]) -> StoredMessage:
    """A row of (id, role, content, tool_calls, tool_call_id, name, created_at)."""
    id_, role, content, calls, call_id, name, created_at = row
    tool_calls = tuple(ToolCall(**c) for c in json.loads(calls)) if calls else ()
    return StoredMessage(id_, ChatMessage(role, content, tool_calls, call_id, name), created_at)


def history_window(stored: Sequence[StoredMessage]) -> list[ChatMessage]:
    """The messages from the first user message on: a window must not open in the middle of a turn
    (a tool result without its call)."""
    start = next((i for i, s in enumerate(stored) if s.message.role == "user"), len(stored))
    return [s.message for s in stored[start:]]


def archive_key(key: str) -> str:
    """The key a conversation moves to when archived: its own, stamped, unique to the microsecond."""
    return f"{key}@{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1000000:06d}"


def conversation(row: Sequence[Any]) -> ConversationInfo:
    """A row of (key, title, metadata JSON, created_at, updated_at, message count, first user message)."""
    key, title, metadata, created_at, updated_at, count, first = row
    return ConversationInfo(key, title or title_of(first), json.loads(metadata), created_at, updated_at, count)


def title_of(first_message: str | None) -> str:
    text = " ".join((first_message or "").split())
    if len(text) > TITLE_LENGTH:
        text = text[: TITLE_LENGTH - 1] + "…"
    return text or UNTITLED
