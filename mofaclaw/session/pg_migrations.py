"""Numbered PostgreSQL schema migrations of the session store; pg.migrate records how far each database is."""

from __future__ import annotations

import asyncpg

from mofaclaw.session.pg import Migration


async def _m1_initial(db: asyncpg.Connection) -> None:
    # The SQLite schema as its three migrations left it. Times are epoch seconds as in SQLite; JSON stays
    # text, because jsonb would reorder the keys of a response body served back as it was stored.
    await db.execute(
        """
        CREATE TABLE sessions (
            key TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            consolidated_upto BIGINT NOT NULL DEFAULT 0,
            title TEXT,
            metadata TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE messages (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            session_key TEXT NOT NULL REFERENCES sessions(key) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT,
            tool_calls TEXT,
            tool_call_id TEXT,
            name TEXT,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX messages_by_session ON messages(session_key, id);
        CREATE TABLE paused_turns (
            id TEXT PRIMARY KEY,
            session_key TEXT,
            pending TEXT NOT NULL,
            messages TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX paused_by_session ON paused_turns(session_key);
        CREATE TABLE paused_calls (
            call_id TEXT NOT NULL,
            turn_id TEXT NOT NULL REFERENCES paused_turns(id) ON DELETE CASCADE
        );
        CREATE INDEX paused_calls_by_id ON paused_calls(call_id);
        CREATE INDEX paused_calls_by_turn ON paused_calls(turn_id);
        CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            previous_id TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            body TEXT NOT NULL,
            input_items TEXT NOT NULL,
            messages TEXT NOT NULL
        );
        """
    )


MIGRATIONS: list[Migration] = [_m1_initial]
