"""Numbered schema migrations; the database records which ones ran in PRAGMA user_version."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def _m1_initial(db: sqlite3.Connection) -> None:
    _script(db,
        """
        CREATE TABLE sessions (
            key TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            consolidated_upto INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_key TEXT NOT NULL REFERENCES sessions(key) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT,
            tool_calls TEXT,
            tool_call_id TEXT,
            name TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX messages_by_session ON messages(session_key, id);
        """
    )


def _m2_titles(db: sqlite3.Connection) -> None:
    # A title set by the user (NULL: the first user message stands in), and OpenAI-style metadata (JSON).
    _script(db,
        """
        ALTER TABLE sessions ADD COLUMN title TEXT;
        ALTER TABLE sessions ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
        """
    )


def _m3_paused_turns_and_responses(db: sqlite3.Connection) -> None:
    # A paused turn waits for the client's tool results; nothing of it is in `messages` until it ends.
    # session_key is NULL for a stateless turn (found by its call ids instead).
    _script(db,
        """
        CREATE TABLE paused_turns (
            id TEXT PRIMARY KEY,
            session_key TEXT,
            pending TEXT NOT NULL,
            messages TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX paused_by_session ON paused_turns(session_key);
        CREATE TABLE paused_calls (
            call_id TEXT NOT NULL,
            turn_id TEXT NOT NULL REFERENCES paused_turns(id) ON DELETE CASCADE
        );
        CREATE INDEX paused_calls_by_id ON paused_calls(call_id);
        CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            previous_id TEXT,
            created_at REAL NOT NULL,
            body TEXT NOT NULL,
            input_items TEXT NOT NULL,
            messages TEXT NOT NULL
        );
        """
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m1_initial, _m2_titles, _m3_paused_turns_and_responses]


def migrate(db: sqlite3.Connection) -> None:
    """Each migration in a write transaction that checks the version again first: two processes opening
    a new database at once (the CLI beside a gateway) take turns, and the second finds the work done."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        with db:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("PRAGMA user_version").fetchone()[0] < number:
                migration(db)
                db.execute(f"PRAGMA user_version = {number}")


def _script(db: sqlite3.Connection, script: str) -> None:
    # Statement by statement: executescript() would commit the open transaction first.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
