"""Stored Responses API objects in SQLite: each holds its turn's messages and points to the previous one."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from mofaclaw.session.codec import dump_messages, join_turns, load_messages
from mofaclaw.types import ChatMessage


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """`body`: the response object as served; `input_items`: its input, as listed by input_items;
    `messages`: what its turn added to the conversation (the input and every step)."""

    id: str
    previous_id: str | None
    created_at: float
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    messages: tuple[ChatMessage, ...]


def save(db: sqlite3.Connection, response: StoredResponse) -> None:
    with db:
        db.execute("INSERT OR REPLACE INTO responses(id, previous_id, created_at, body, input_items, messages) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (response.id, response.previous_id, response.created_at, json.dumps(response.body),
                    json.dumps(response.input_items), dump_messages(response.messages)))


def get(db: sqlite3.Connection, response_id: str) -> StoredResponse | None:
    row = db.execute("SELECT id, previous_id, created_at, body, input_items, messages FROM responses WHERE id = ?",
                     (response_id,)).fetchone()
    if row is None:
        return None
    id_, previous, created, body, items, messages = row
    return StoredResponse(id_, previous, created, json.loads(body), json.loads(items), load_messages(messages))


def delete(db: sqlite3.Connection, response_id: str) -> bool:
    with db:
        return db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0


def chain(db: sqlite3.Connection, response_id: str) -> list[ChatMessage] | None:
    """The conversation up to and including `response_id`, walking back through previous ids; None when
    that response is unknown. A deleted ancestor ends the walk: what came before it is gone with it."""
    turns: list[str] = []
    current: str | None = response_id
    seen: set[str] = set()
    while current is not None and current not in seen:
        seen.add(current)
        row = db.execute("SELECT previous_id, messages FROM responses WHERE id = ?", (current,)).fetchone()
        if row is None:
            break
        turns.append(row[1])
        current = row[0]
    return join_turns(turns)
