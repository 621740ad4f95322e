"""SQLite session store (WAL): slow work on a worker thread, a turn's few statements on the loop's own connection."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mofaclaw.session import paused, responses
from mofaclaw.session.base import ConversationInfo, Recent, SessionInfo, StoredMessage
from mofaclaw.session.migrations import migrate
from mofaclaw.session.paused import PausedTurn
from mofaclaw.session.responses import StoredResponse
from mofaclaw.session.rows import (
    CONVERSATION_SELECT,
    MESSAGE_COLUMNS,
    archive_key,
    conversation,
    history_window,
    message_row,
    stored_message,
)
from mofaclaw.session.sqlite_loop import LoopConnection, Missed
from mofaclaw.types import ChatMessage, ToolCall

T = TypeVar("T")
log = logging.getLogger(__name__)

# Commits on the loop connection between two checkpoints on the worker. A turn writes ~4-6 pages, so
# this is about SQLite's own autocheckpoint (1,000 pages) and keeps the WAL at a few MB.
CHECKPOINT_EVERY = 200
BUSY_TIMEOUT_MS = 5000  # how long the worker waits for a lock another process holds
RESTART_PATIENCE_MS = 100


class SQLiteSessionStore:
    """Everything that may wait for a lock or fsync (migrations, archives, consolidation, lists, paused
    turns' writes, responses, checkpoints) runs on one worker thread's connection. A turn's hot
    statements (its history and paused-turn reads, its commit) run on a second connection on the event
    loop's thread that never waits (sqlite_loop.py) and fall back to the worker when SQLite answers BUSY."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # One thread owns the connection that may wait: SQLite writes are serialized anyway, and this
        # keeps every slow call off the event loop without a connection per call.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sessions")
        self._db: sqlite3.Connection | None = None  # set once migrated: the loop connection may start
        self._loop_db = LoopConnection(path)
        self._loop_commits = 0  # since the last checkpoint was asked for

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            _create_private(self.path)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _use_wal(db)
            # NORMAL in WAL mode is still crash-safe (a power cut may lose the last turn, never
            # corrupt the database), and saves an fsync per turn.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.isolation_level = ""  # back to implicit transactions for `with db:`
            migrate(db)
            self._db = db
        return self._db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connect()))

    async def _read_fast(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the loop's connection if it can run there now, else on the worker."""
        if self._db is not None:  # the worker migrated the database: the loop connection may read it
            try:
                return self._loop_db.read(fn)
            except Missed:
                pass
        return await self._run(fn)

    async def _write_fast(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` in one transaction on the loop's connection if the write lock is free now, else on the
        worker, which waits for it (busy_timeout): nothing that succeeds on the worker fails here."""
        if self._db is not None:
            try:
                result = self._loop_db.write(fn)
            except Missed as exc:
                log.debug("sessions: committing on the worker instead (%s)", exc)
            else:
                self._committed_on_loop()
                return result
        return await self._run(lambda db: _in_transaction(db, fn))

    def _committed_on_loop(self) -> None:
        # The loop connection never checkpoints (that fsyncs): the worker does, now and then, so the
        # WAL cannot grow without bound.
        self._loop_commits += 1
        if self._loop_commits >= CHECKPOINT_EVERY:
            self._loop_commits = 0
            self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        """PASSIVE copies the WAL into the database without blocking anyone; but the loop keeps
        committing meanwhile, so the WAL is never wholly copied when the next writer starts, and only
        then does SQLite rewind it: it would grow for ever. RESTART then copies the few frames left
        while holding the write lock (the loop's commits meanwhile fall back to this thread, behind it),
        and leaves the WAL to be rewound by the next commit."""
        try:
            db = self._connect()
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            # RESTART waits (busy handler) for readers and writers: briefly, so a reader left open in
            # another process cannot hold up this thread's real work; the next checkpoint tries again.
            db.execute(f"PRAGMA busy_timeout={RESTART_PATIENCE_MS}")
            try:
                db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            finally:
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:  # the next one will try again; a turn must not notice
            log.warning("sessions: WAL checkpoint failed: %s", exc)

    async def append_turn(self, key: str, messages: Sequence[ChatMessage], *,
                          created_at: float | None = None) -> bool:
        now = time.time()
        rows = [(key, *message_row(m), now) for m in messages]
        return await self._write_fast(lambda db: _insert_turn(db, key, rows, now, created_at))  # all or nothing

    async def history(self, key: str, limit: int) -> list[ChatMessage]:
        return history_window(await self._read_fast(lambda db: _recent(db, key, limit)))

    async def recent(self, key: str, limit: int) -> Recent:
        def read(db: sqlite3.Connection) -> Recent:  # one visit to the store
            row = db.execute("SELECT created_at FROM sessions WHERE key = ?", (key,)).fetchone()
            return Recent(history_window(_recent(db, key, limit)), paused.find(db, key, ()),
                          row[0] if row else None)

        return await self._read_fast(read)

    async def messages(self, key: str) -> list[StoredMessage]:
        def read(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? ORDER BY id", (key,)
            ).fetchall()
            return [stored_message(r) for r in rows]

        return await self._run(read)

    async def list_sessions(self) -> list[SessionInfo]:
        def read(db: sqlite3.Connection) -> list[SessionInfo]:
            rows = db.execute(
                "SELECT s.key, COUNT(m.id), s.updated_at FROM sessions s "
                "LEFT JOIN messages m ON m.session_key = s.key GROUP BY s.key ORDER BY s.updated_at DESC"
            ).fetchall()
            return [SessionInfo(k, n, t) for k, n, t in rows]

        return await self._run(read)

    async def delete(self, key: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            with db:  # and a turn it has waiting for a client's tools: the id must not stay blocked by it
                paused_gone = db.execute("DELETE FROM paused_turns WHERE session_key = ?", (key,)).rowcount
                db.execute("DELETE FROM messages WHERE session_key = ?", (key,))
                return db.execute("DELETE FROM sessions WHERE key = ?", (key,)).rowcount > 0 or paused_gone > 0

        return await self._run(write)

    async def archive(self, key: str) -> str | None:
        new_key = archive_key(key)

        def write(db: sqlite3.Connection) -> str | None:
            with db:
                row = db.execute("SELECT created_at, updated_at, consolidated_upto FROM sessions "
                                 "WHERE key = ?", (key,)).fetchone()
                if row is None:
                    return None
                db.execute("INSERT INTO sessions(key, created_at, updated_at, consolidated_upto) "
                           "VALUES (?, ?, ?, ?)", (new_key, *row))
                db.execute("UPDATE messages SET session_key = ? WHERE session_key = ?", (new_key, key))
                db.execute("DELETE FROM sessions WHERE key = ?", (key,))
                return new_key

        return await self._run(write)

    async def unconsolidated(self, key: str, keep: int) -> list[StoredMessage]:
        def read(db: sqlite3.Connection) -> list[StoredMessage]:
            row = db.execute("SELECT consolidated_upto FROM sessions WHERE key = ?", (key,)).fetchone()
            upto = row[0] if row else 0
            rows = db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? AND id > ? ORDER BY id",
                (key, upto),
            ).fetchall()
            return [stored_message(r) for r in rows[: max(0, len(rows) - keep)]]

        return await self._run(read)

    async def mark_consolidated(self, key: str, upto_id: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("UPDATE sessions SET consolidated_upto = MAX(consolidated_upto, ?) "
                           "WHERE key = ?", (upto_id, key))

        await self._run(write)

    async def conversations(self) -> list[ConversationInfo]:
        def read(db: sqlite3.Connection) -> list[ConversationInfo]:
            return [conversation(r) for r in db.execute(f"{CONVERSATION_SELECT} ORDER BY s.updated_at DESC, s.key")]

        return await self._run(read)

    async def conversation(self, key: str) -> ConversationInfo | None:
        return await self._run(lambda db: _conversation_of(db, key))

    async def create(self, key: str, metadata: dict[str, str]) -> ConversationInfo | None:
        now = time.time()

        def write(db: sqlite3.Connection) -> ConversationInfo | None:
            with db:
                inserted = db.execute(
                    "INSERT INTO sessions(key, created_at, updated_at, metadata) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(key) DO NOTHING", (key, now, now, json.dumps(metadata))).rowcount
            return _conversation_of(db, key) if inserted else None

        return await self._run(write)

    async def update(self, key: str, *, title: str | None = None,
                     metadata: dict[str, str] | None = None) -> ConversationInfo | None:
        def write(db: sqlite3.Connection) -> ConversationInfo | None:
            with db:
                if title is not None:
                    db.execute("UPDATE sessions SET title = ? WHERE key = ?", (title.strip() or None, key))
                if metadata is not None:
                    db.execute("UPDATE sessions SET metadata = ? WHERE key = ?", (json.dumps(metadata), key))
            return _conversation_of(db, key)

        return await self._run(write)

    # Paused turns and stored responses: the SQL lives in their modules; these run it on our thread.

    async def pause_turn(self, session_key: str | None, pending: Sequence[ToolCall],
                         messages: Sequence[ChatMessage], ttl: float) -> PausedTurn:
        return await self._run(lambda db: paused.save(db, session_key, pending, messages, ttl))

    async def paused_turn(self, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
        return await self._read_fast(lambda db: paused.find(db, session_key, call_ids))

    async def take_paused_turn(self, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
        return await self._run(lambda db: paused.take(db, session_key, call_ids))

    async def restore_paused_turn(self, turn: PausedTurn) -> None:
        await self._run(lambda db: paused.restore(db, turn))

    async def save_response(self, response: StoredResponse) -> None:
        await self._run(lambda db: responses.save(db, response))

    async def response(self, response_id: str) -> StoredResponse | None:
        return await self._run(lambda db: responses.get(db, response_id))

    async def delete_response(self, response_id: str) -> bool:
        return await self._run(lambda db: responses.delete(db, response_id))

    async def response_chain(self, response_id: str) -> list[ChatMessage] | None:
        return await self._run(lambda db: responses.chain(db, response_id))

    async def connect(self) -> None:
        """Open (and migrate) the database now, so a broken one fails at start rather than on a turn."""
        await self._run(lambda _: None)

    async def close(self) -> None:
        self._loop_db.close()  # first: the worker's connection, closed last, checkpoints the WAL away

        def close(_: sqlite3.Connection) -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        if self._db is not None:
            await self._run(close)
        self._executor.shutdown(wait=True)


def _create_private(path: Path) -> None:
    """The database readable by its owner only (every conversation is in it). SQLite gives its
    -wal and -shm files the database's mode, so those follow; files left wider by an older
    version are narrowed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)
        except FileNotFoundError:
            continue


def _insert_turn(db: sqlite3.Connection, key: str, rows: Sequence[tuple[object, ...]], now: float,
                 created_at: float | None) -> bool:
    if created_at is not None:
        if not db.execute("UPDATE sessions SET updated_at = ? WHERE key = ? AND created_at = ?",
                          (now, key, created_at)).rowcount:
            return False  # deleted while the turn ran
    else:
        db.execute("INSERT INTO sessions(key, created_at, updated_at) VALUES (?, ?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET updated_at = excluded.updated_at", (key, now, now))
    db.executemany("INSERT INTO messages(session_key, role, content, tool_calls, tool_call_id, name, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return True


def _in_transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    with db:
        return fn(db)


def _conversation_of(db: sqlite3.Connection, key: str) -> ConversationInfo | None:
    row = db.execute(f"{CONVERSATION_SELECT} WHERE s.key = ?", (key,)).fetchone()
    return conversation(row) if row else None


def _use_wal(db: sqlite3.Connection, patience: float = 5.0) -> None:
    """Switch a database to WAL. The switch needs the file to itself for a moment, and SQLite answers
    "locked" at once, without waiting out busy_timeout, when another process (the CLI beside a gateway)
    opens the same new database in that moment: so wait here, briefly, as busy_timeout would."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _recent(db: sqlite3.Connection, key: str, limit: int) -> list[StoredMessage]:
    rows = db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? ORDER BY id DESC LIMIT ?",
                      (key, limit)).fetchall()
    return [stored_message(r) for r in reversed(rows)]
