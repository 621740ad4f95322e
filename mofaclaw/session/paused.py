"""Paused turns in SQLite: a turn waiting for a client's tool results, kept apart from the conversation."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from mofaclaw.session.codec import dump_calls, dump_messages, load_calls, load_messages
from mofaclaw.types import ChatMessage, ToolCall


@dataclass(frozen=True, slots=True)
class PausedTurn:
    """`messages`: the turn so far (its user message, every step, the agent's tool results);
    `pending`: the client's calls it waits for. `session_key` is None for a stateless turn."""

    id: str
    session_key: str | None
    pending: tuple[ToolCall, ...]
    messages: tuple[ChatMessage, ...]
    expires_at: float

    @property
    def pending_ids(self) -> frozenset[str]:
        return frozenset(call.id for call in self.pending)


def new_turn(session_key: str | None, pending: Sequence[ToolCall], messages: Sequence[ChatMessage],
             ttl: float) -> PausedTurn:
    """A turn paused now, living `ttl` seconds (every store makes them alike)."""
    return PausedTurn(uuid.uuid4().hex, session_key, tuple(pending), tuple(messages), time.time() + ttl)


def save(db: sqlite3.Connection, session_key: str | None, pending: Sequence[ToolCall],
         messages: Sequence[ChatMessage], ttl: float) -> PausedTurn:
    turn = new_turn(session_key, pending, messages, ttl)
    with db:
        _prune(db, time.time())
        if session_key is not None:  # one paused turn per conversation: a newer one replaces it
            db.execute("DELETE FROM paused_turns WHERE session_key = ?", (session_key,))
        db.execute("INSERT INTO paused_turns(id, session_key, pending, messages, expires_at) VALUES (?, ?, ?, ?, ?)",
                   (turn.id, session_key, dump_calls(turn.pending), dump_messages(turn.messages), turn.expires_at))
        db.executemany("INSERT INTO paused_calls(call_id, turn_id) VALUES (?, ?)",
                       [(call.id, turn.id) for call in pending])
    return turn


def restore(db: sqlite3.Connection, turn: PausedTurn) -> None:
    """Put a taken turn back (its resumption failed), unless a newer one took its place."""
    with db:
        if turn.session_key is not None and db.execute(
                "SELECT 1 FROM paused_turns WHERE session_key = ?", (turn.session_key,)).fetchone():
            return
        db.execute("INSERT OR IGNORE INTO paused_turns(id, session_key, pending, messages, expires_at) "
                   "VALUES (?, ?, ?, ?, ?)", (turn.id, turn.session_key, dump_calls(turn.pending),
                                              dump_messages(turn.messages), turn.expires_at))
        db.executemany("INSERT INTO paused_calls(call_id, turn_id) VALUES (?, ?)",
                       [(call.id, turn.id) for call in turn.pending])


def find(db: sqlite3.Connection, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
    """The live paused turn of a conversation or, for a stateless turn, the newest one with these call ids."""
    now = time.time()
    if session_key is not None:
        row = db.execute("SELECT id, session_key, pending, messages, expires_at FROM paused_turns "
                         "WHERE session_key = ? AND expires_at > ?", (session_key, now)).fetchone()
    else:
        marks = ",".join("?" * len(call_ids))
        row = db.execute(
            "SELECT t.id, t.session_key, t.pending, t.messages, t.expires_at FROM paused_turns t "
            f"JOIN paused_calls c ON c.turn_id = t.id WHERE c.call_id IN ({marks}) AND t.session_key IS NULL "
            "AND t.expires_at > ? ORDER BY t.expires_at DESC LIMIT 1", (*call_ids, now)).fetchone() if marks else None
    if row is None:
        return None
    id_, key, pending, messages, expires_at = row
    return PausedTurn(id_, key, load_calls(pending), load_messages(messages), expires_at)


def take(db: sqlite3.Connection, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
    """Find and delete, in one transaction: two resumptions of one turn cannot both have it."""
    with db:
        _prune(db, time.time())
        turn = find(db, session_key, call_ids)
        if turn is not None:
            db.execute("DELETE FROM paused_turns WHERE id = ?", (turn.id,))
    return turn


def _prune(db: sqlite3.Connection, now: float) -> None:
    # Expired turns are dropped whole; the conversation never held any of them.
    db.execute("DELETE FROM paused_turns WHERE expires_at <= ?", (now,))
