"""Numbered schema migrations; the database records which ones ran in PRAGMA user_version."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def _m1_initial(db: sqlite3.Connection) -> None:
    db.executescript(
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
    db.executescript(
        """
        ALTER TABLE sessions ADD COLUMN title TEXT;
        ALTER TABLE sessions ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
        """
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m1_initial, _m2_titles]


def migrate(db: sqlite3.Connection) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        with db:
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
