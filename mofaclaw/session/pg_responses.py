"""Stored Responses API objects in PostgreSQL; a chain is read in one recursive query."""

from __future__ import annotations

import json

import asyncpg

from mofaclaw.session.codec import dump_messages, join_turns, load_messages
from mofaclaw.session.responses import StoredResponse
from mofaclaw.types import ChatMessage

# Newest first; `seen` stops a cycle, and a missing ancestor ends the walk (the join finds nothing).
_CHAIN = """
WITH RECURSIVE chain(id, previous_id, messages, depth, seen) AS (
    SELECT id, previous_id, messages, 0, ARRAY[id] FROM responses WHERE id = $1
    UNION ALL
    SELECT r.id, r.previous_id, r.messages, c.depth + 1, c.seen || r.id
    FROM chain c JOIN responses r ON r.id = c.previous_id
    WHERE r.id <> ALL(c.seen)
)
SELECT messages FROM chain ORDER BY depth
"""


async def save(db: asyncpg.Connection, response: StoredResponse) -> None:
    await db.execute(
        "INSERT INTO responses(id, previous_id, created_at, body, input_items, messages) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET previous_id = excluded.previous_id, "
        "created_at = excluded.created_at, body = excluded.body, input_items = excluded.input_items, "
        "messages = excluded.messages",
        response.id, response.previous_id, response.created_at, json.dumps(response.body),
        json.dumps(response.input_items), dump_messages(response.messages))


async def get(db: asyncpg.Connection, response_id: str) -> StoredResponse | None:
    row = await db.fetchrow("SELECT id, previous_id, created_at, body, input_items, messages FROM responses "
                            "WHERE id = $1", response_id)
    if row is None:
        return None
    id_, previous, created, body, items, messages = row
    return StoredResponse(id_, previous, created, json.loads(body), json.loads(items), load_messages(messages))


async def delete(db: asyncpg.Connection, response_id: str) -> bool:
    return await db.execute("DELETE FROM responses WHERE id = $1", response_id) == "DELETE 1"


async def chain(db: asyncpg.Connection, response_id: str) -> list[ChatMessage] | None:
    """The conversation up to and including `response_id`; None when that response is unknown."""
    return join_turns(row["messages"] for row in await db.fetch(_CHAIN, response_id))
