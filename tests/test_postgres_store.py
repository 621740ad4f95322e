"""What only the PostgreSQL store has to get right: replicas migrating together, a server that goes and comes back."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import asyncpg
import pytest
from postgres_server import PASSWORD, PostgresServer

from mofaclaw.errors import BackendUnavailable, ConfigError
from mofaclaw.session.pg_migrations import MIGRATIONS
from mofaclaw.session.postgres import PostgresSessionStore
from mofaclaw.types import ChatMessage

TURN = [ChatMessage("user", "hello"), ChatMessage("assistant", "Hi!")]


def assert_one_clear_line(error: BackendUnavailable, dsn: str) -> None:
    text = str(error)
    parts = urlsplit(dsn)
    assert "\n" not in text and f"{parts.hostname}:{parts.port}{parts.path}" in text, text
    assert PASSWORD not in text and parts.password not in text, text


async def test_replicas_starting_together_migrate_a_new_database_once(postgres_dsn: str) -> None:
    replicas = [PostgresSessionStore(postgres_dsn, pool_size=2) for _ in range(6)]
    try:
        await asyncio.gather(*(r.connect() for r in replicas))
        await asyncio.gather(*(r.append_turn(f"api:{i}", TURN) for i, r in enumerate(replicas)))
        assert len(await replicas[0].list_sessions()) == 6
    finally:
        await asyncio.gather(*(r.close() for r in replicas))
    db = await asyncpg.connect(postgres_dsn)
    try:
        versions = await db.fetch("SELECT component, version FROM schema_versions")
    finally:
        await db.close()
    assert [tuple(v) for v in versions] == [("session", len(MIGRATIONS))]


async def test_a_lost_server_is_backend_unavailable_until_it_is_back(
        postgres_server: PostgresServer, postgres_dsn: str) -> None:
    store = PostgresSessionStore(postgres_dsn, pool_size=3)
    try:
        await store.connect()
        await store.append_turn("api:a", TURN)
        postgres_server.stop()
        try:
            for _ in range(3):  # every pooled connection is gone: each call says so, none hangs
                with pytest.raises(BackendUnavailable) as lost:
                    await store.append_turn("api:a", TURN)
                assert_one_clear_line(lost.value, postgres_dsn)
            with pytest.raises(BackendUnavailable):
                await store.history("api:a", 10)
        finally:
            postgres_server.start()
        # Back: the very next call reconnects, and the failed turns left nothing behind.
        assert await store.history("api:a", 10) == TURN
        await store.append_turn("api:a", TURN)
        assert len(await store.messages("api:a")) == 4
    finally:
        await store.close()


async def test_a_store_opened_while_the_server_is_down_works_once_it_is_up(
        postgres_server: PostgresServer, postgres_dsn: str) -> None:
    store = PostgresSessionStore(postgres_dsn)
    postgres_server.stop()
    try:
        with pytest.raises(BackendUnavailable) as down:
            await store.conversations()
        assert_one_clear_line(down.value, postgres_dsn)
    finally:
        postgres_server.start()
    try:
        assert await store.conversations() == []
    finally:
        await store.close()


async def test_connect_explains_an_unreachable_server_a_wrong_password_or_no_rights(
        postgres_server: PostgresServer, postgres_dsn: str) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    parts = urlsplit(postgres_dsn)
    nowhere = postgres_dsn.replace(f":{parts.port}/", f":{closed_port}/")
    wrong_password = postgres_dsn.replace(f":{parts.password}@", ":not-the-password@")
    for dsn in (nowhere, wrong_password):
        store = PostgresSessionStore(dsn)
        with pytest.raises(BackendUnavailable) as failed:
            await store.connect()
        assert_one_clear_line(failed.value, dsn)
        assert "not-the-password" not in str(failed.value)
        await store.close()
    assert "password authentication failed" in str(failed.value)
    # The server's own database, where this user may not create tables (PostgreSQL 15 and later).
    refused = PostgresSessionStore(postgres_server.dsn)
    with pytest.raises(BackendUnavailable, match="cannot hold the session tables: permission denied") as failed:
        await refused.connect()
    assert_one_clear_line(failed.value, postgres_server.dsn)
    await refused.close()
    with pytest.raises(ConfigError, match="postgresql://"):
        await PostgresSessionStore("mysql://u:p@h/db").connect()
