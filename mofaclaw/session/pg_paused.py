"""Paused turns in PostgreSQL: the SQLite module's rules, safe between replicas (row and advisory locks)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg

from mofaclaw.session.codec import dump_calls, dump_messages, load_calls, load_messages
from mofaclaw.session.paused import PausedTurn, new_turn
from mofaclaw.types import ChatMessage, ToolCall

_TURN = "SELECT t.id, t.session_key, t.pending, t.messages, t.expires_at FROM paused_turns t"


async def save(db: asyncpg.Connection, session_key: str | None, pending: Sequence[ToolCall],
               messages: Sequence[ChatMessage], ttl: float) -> PausedTurn:
    turn = new_turn(session_key, pending, messages, ttl)
    async with db.transaction():
        await _lock(db, session_key)
        await _prune(db)
        if session_key is not None:  # one paused turn per conversation: a newer one replaces it
            await db.execute("DELETE FROM paused_turns WHERE session_key = $1", session_key)
        await _insert(db, turn)
    return turn


async def restore(db: asyncpg.Connection, turn: PausedTurn) -> None:
    """Put a taken turn back (its resumption failed), unless a newer one took its place."""
    async with db.transaction():
        await _lock(db, turn.session_key)
        if turn.session_key is not None and await db.fetchval(
                "SELECT 1 FROM paused_turns WHERE session_key = $1", turn.session_key):
            return
        if not await db.fetchval("SELECT 1 FROM paused_turns WHERE id = $1", turn.id):
            await _insert(db, turn)


async def find(db: asyncpg.Connection, session_key: str | None, call_ids: Sequence[str], *,
               for_update: bool = False) -> PausedTurn | None:
    """The live paused turn of a conversation or, for a stateless turn, the newest one with these call ids."""
    lock = " FOR UPDATE OF t" if for_update else ""
    if session_key is not None:
        row = await db.fetchrow(f"{_TURN} WHERE t.session_key = $1 AND t.expires_at > $2{lock}",
                                session_key, time.time())
    elif call_ids:
        row = await db.fetchrow(
            f"{_TURN} JOIN paused_calls c ON c.turn_id = t.id WHERE c.call_id = ANY($1::text[]) "
            f"AND t.session_key IS NULL AND t.expires_at > $2 ORDER BY t.expires_at DESC LIMIT 1{lock}",
            list(call_ids), time.time())
    else:
        row = None
    if row is None:
        return None
    id_, key, pending, messages, expires_at = row
    return PausedTurn(id_, key, load_calls(pending), load_messages(messages), expires_at)


async def take(db: asyncpg.Connection, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
    """Find and delete in one transaction; the row lock makes a second taker wait, then find nothing."""
    async with db.transaction():
        await _lock(db, session_key)
        await _prune(db)
        turn = await find(db, session_key, call_ids, for_update=True)
        if turn is None or await db.execute("DELETE FROM paused_turns WHERE id = $1", turn.id) != "DELETE 1":
            return None
    return turn


async def _insert(db: asyncpg.Connection, turn: PausedTurn) -> None:
    await db.execute("INSERT INTO paused_turns(id, session_key, pending, messages, expires_at) "
                     "VALUES ($1, $2, $3, $4, $5)", turn.id, turn.session_key, dump_calls(turn.pending),
                     dump_messages(turn.messages), turn.expires_at)
    await db.executemany("INSERT INTO paused_calls(call_id, turn_id) VALUES ($1, $2)",
                         [(call.id, turn.id) for call in turn.pending])


async def _lock(db: asyncpg.Connection, session_key: str | None) -> None:
    # Two replicas pausing or restoring for one conversation take turns, so it never holds two paused turns.
    if session_key is not None:
        await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"mofaclaw.paused:{session_key}")


async def _prune(db: asyncpg.Connection) -> None:
    # Expired turns are dropped whole; the conversation never held any of them.
    await db.execute("DELETE FROM paused_turns WHERE expires_at <= $1", time.time())
