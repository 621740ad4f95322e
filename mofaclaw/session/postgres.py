"""PostgreSQL session store (asyncpg): the SQLite store's contract, shared by every replica of a cluster."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from mofaclaw.session import pg_paused, pg_responses
from mofaclaw.session.base import ConversationInfo, Recent, SessionInfo, StoredMessage
from mofaclaw.session.paused import PausedTurn
from mofaclaw.session.pg import create_pool, migrate, translated
from mofaclaw.session.pg_migrations import MIGRATIONS
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
from mofaclaw.types import ChatMessage, ToolCall


class PostgresSessionStore:
    """Every call borrows a pooled connection; every write is one transaction. The pool opens (and the
    schema migrates) on first use or on `connect()`. A server that cannot be reached is BackendUnavailable;
    once it is back, the next call reconnects by itself."""

    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def connect(self) -> None:
        """Open the pool and migrate now (at start), so an unreachable server is known before any turn."""
        await self._ready()

    async def _ready(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                pool = await create_pool(self._dsn, self._pool_size)
                try:
                    async with translated(self._dsn), pool.acquire() as db:
                        await migrate(db, self._dsn, "session", MIGRATIONS)
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
            return self._pool

    @asynccontextmanager
    async def _db(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._ready()
        async with translated(self._dsn), pool.acquire() as db:
            yield db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._db() as db, db.transaction():
            yield db

    async def append_turn(self, key: str, messages: Sequence[ChatMessage], *,
                          created_at: float | None = None) -> bool:
        now = time.time()
        async with self._transaction() as db:  # the whole turn or nothing
            if created_at is not None:
                if await db.execute("UPDATE sessions SET updated_at = $1 WHERE key = $2 AND created_at = $3",
                                    now, key, created_at) == "UPDATE 0":
                    return False  # deleted while the turn ran
            else:
                await db.execute(
                    "INSERT INTO sessions(key, created_at, updated_at) VALUES ($1, $2, $2) "
                    "ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at", key, now)
            await db.executemany(
                "INSERT INTO messages(session_key, role, content, tool_calls, tool_call_id, name, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)", [(key, *message_row(m), now) for m in messages])
        return True

    async def history(self, key: str, limit: int) -> list[ChatMessage]:
        async with self._db() as db:
            return await _recent(db, key, limit)

    async def recent(self, key: str, limit: int) -> Recent:
        async with self._db() as db:  # one pooled connection for the three reads
            created_at = await db.fetchval("SELECT created_at FROM sessions WHERE key = $1", key)
            return Recent(await _recent(db, key, limit), await pg_paused.find(db, key, ()), created_at)

    async def messages(self, key: str) -> list[StoredMessage]:
        async with self._db() as db:
            rows = await db.fetch(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = $1 ORDER BY id", key)
        return [stored_message(r) for r in rows]

    async def list_sessions(self) -> list[SessionInfo]:
        async with self._db() as db:
            rows = await db.fetch("SELECT s.key, COUNT(m.id), s.updated_at FROM sessions s "
                                  "LEFT JOIN messages m ON m.session_key = s.key GROUP BY s.key "
                                  "ORDER BY s.updated_at DESC")
        return [SessionInfo(k, n, t) for k, n, t in rows]

    async def delete(self, key: str) -> bool:
        async with self._transaction() as db:  # and a turn it has waiting for a client's tools, as in SQLite
            paused_gone = await db.execute("DELETE FROM paused_turns WHERE session_key = $1", key) != "DELETE 0"
            await db.execute("DELETE FROM messages WHERE session_key = $1", key)
            return await db.execute("DELETE FROM sessions WHERE key = $1", key) == "DELETE 1" or paused_gone

    async def archive(self, key: str) -> str | None:
        new_key = archive_key(key)
        async with self._transaction() as db:
            row = await db.fetchrow("SELECT created_at, updated_at, consolidated_upto FROM sessions "
                                    "WHERE key = $1 FOR UPDATE", key)
            if row is None:
                return None
            await db.execute("INSERT INTO sessions(key, created_at, updated_at, consolidated_upto) "
                             "VALUES ($1, $2, $3, $4)", new_key, *row)
            await db.execute("UPDATE messages SET session_key = $1 WHERE session_key = $2", new_key, key)
            await db.execute("DELETE FROM sessions WHERE key = $1", key)
        return new_key

    async def unconsolidated(self, key: str, keep: int) -> list[StoredMessage]:
        async with self._db() as db:
            rows = await db.fetch(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = $1 AND id > "
                "COALESCE((SELECT consolidated_upto FROM sessions WHERE key = $1), 0) ORDER BY id", key)
        return [stored_message(r) for r in rows[: max(0, len(rows) - keep)]]

    async def mark_consolidated(self, key: str, upto_id: int) -> None:
        async with self._db() as db:
            await db.execute("UPDATE sessions SET consolidated_upto = GREATEST(consolidated_upto, $1) "
                             "WHERE key = $2", upto_id, key)

    async def conversations(self) -> list[ConversationInfo]:
        async with self._db() as db:
            rows = await db.fetch(f'{CONVERSATION_SELECT} ORDER BY s.updated_at DESC, s.key COLLATE "C"')
        return [conversation(r) for r in rows]

    async def conversation(self, key: str) -> ConversationInfo | None:
        async with self._db() as db:
            return await _conversation_of(db, key)

    async def create(self, key: str, metadata: dict[str, str]) -> ConversationInfo | None:
        now = time.time()
        async with self._db() as db:
            inserted = await db.execute(
                "INSERT INTO sessions(key, created_at, updated_at, metadata) VALUES ($1, $2, $2, $3) "
                "ON CONFLICT (key) DO NOTHING", key, now, json.dumps(metadata))
            return await _conversation_of(db, key) if inserted == "INSERT 0 1" else None

    async def update(self, key: str, *, title: str | None = None,
                     metadata: dict[str, str] | None = None) -> ConversationInfo | None:
        async with self._db() as db:
            async with db.transaction():
                if title is not None:
                    await db.execute("UPDATE sessions SET title = $1 WHERE key = $2", title.strip() or None, key)
                if metadata is not None:
                    await db.execute("UPDATE sessions SET metadata = $1 WHERE key = $2", json.dumps(metadata), key)
            return await _conversation_of(db, key)

    # Paused turns and stored responses: the SQL lives in their modules; these lend them a connection.

    async def pause_turn(self, session_key: str | None, pending: Sequence[ToolCall],
                         messages: Sequence[ChatMessage], ttl: float) -> PausedTurn:
        async with self._db() as db:
            return await pg_paused.save(db, session_key, pending, messages, ttl)

    async def paused_turn(self, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
        async with self._db() as db:
            return await pg_paused.find(db, session_key, call_ids)

    async def take_paused_turn(self, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
        async with self._db() as db:
            return await pg_paused.take(db, session_key, call_ids)

    async def restore_paused_turn(self, turn: PausedTurn) -> None:
        async with self._db() as db:
            await pg_paused.restore(db, turn)

    async def save_response(self, response: StoredResponse) -> None:
        async with self._db() as db:
            await pg_responses.save(db, response)

    async def response(self, response_id: str) -> StoredResponse | None:
        async with self._db() as db:
            return await pg_responses.get(db, response_id)

    async def delete_response(self, response_id: str) -> bool:
        async with self._db() as db:
            return await pg_responses.delete(db, response_id)

    async def response_chain(self, response_id: str) -> list[ChatMessage] | None:
        async with self._db() as db:
            return await pg_responses.chain(db, response_id)

    async def close(self) -> None:
        async with self._opening:
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()  # a connection still busy, or a server gone: nothing left to save


async def _conversation_of(db: asyncpg.Connection, key: str) -> ConversationInfo | None:
    row = await db.fetchrow(f"{CONVERSATION_SELECT} WHERE s.key = $1", key)
    return conversation(row) if row else None


async def _recent(db: asyncpg.Connection, key: str, limit: int) -> list[ChatMessage]:
    rows = await db.fetch(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = $1 ORDER BY id DESC LIMIT $2",
                          key, limit)
    return history_window([stored_message(r) for r in reversed(rows)])
