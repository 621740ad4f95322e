"""Cron jobs in PostgreSQL: one set of jobs for every replica and command, changes heard at once, no lost update."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from manual_clock import ManualClock
from postgres_server import PASSWORD, PostgresServer

from mofaclaw.bus.events import InboundMessage
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.errors import BackendUnavailable
from mofaclaw.services.cron import CronService
from mofaclaw.services.cron_pg import PostgresCronStore
from mofaclaw.services.cron_store import CronJob, new_job
from mofaclaw.services.schedule import At, Every

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TIMEOUT = 10


def job(message: str, schedule: At | Every | None = None, now: datetime = START) -> CronJob:
    return new_job(message[:10], message, schedule or Every(60, now), now, channel="telegram", to="alice")


@asynccontextmanager
async def listening(store: PostgresCronStore) -> AsyncIterator[asyncio.Queue[None]]:
    """The store's changes() running, each one put on the queue; yields once it listens."""
    heard: asyncio.Queue[None] = asyncio.Queue()

    async def listen() -> None:
        async for _ in store.changes():
            heard.put_nowait(None)

    task = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(heard.get(), TIMEOUT)  # the first one says: listening now
        yield heard
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_job_added_by_one_process_is_seen_and_heard_by_another(postgres_dsn: str) -> None:
    cli, gateway = PostgresCronStore(postgres_dsn), PostgresCronStore(postgres_dsn)
    assert await asyncio.to_thread(gateway.jobs) == []
    async with listening(gateway) as heard:
        first = await asyncio.to_thread(cli.add, job("water the plants"))
        await asyncio.wait_for(heard.get(), TIMEOUT)
        second = await asyncio.to_thread(cli.add, job("stretch"))
        await asyncio.wait_for(heard.get(), TIMEOUT)
        assert await asyncio.to_thread(gateway.jobs) == [first, second]  # in the order they were added
        disabled = await asyncio.to_thread(cli.set_enabled, first.id, False, START)
        await asyncio.wait_for(heard.get(), TIMEOUT)
        assert disabled is not None and disabled.enabled is False
        assert await asyncio.to_thread(gateway.get, first.id) == disabled
        assert await asyncio.to_thread(cli.remove, second.id) is True
        await asyncio.wait_for(heard.get(), TIMEOUT)
        assert await asyncio.to_thread(gateway.jobs) == [disabled]
    assert await asyncio.to_thread(cli.remove, "nope") is False
    assert await asyncio.to_thread(cli.get, "nope") is None
    assert await asyncio.to_thread(cli.set_enabled, "nope", True, START) is None


def test_updates_from_two_processes_at_once_lose_nothing(postgres_dsn: str) -> None:
    stores = [PostgresCronStore(postgres_dsn), PostgresCronStore(postgres_dsn)]
    counter = stores[0].add(replace(job("count"), last_error="0"))

    def bump(i: int) -> None:
        stores[i % 2].update(counter.id, lambda j: replace(j, last_error=str(int(j.last_error or "0") + 1)))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bump, range(40)))
    stored = stores[1].get(counter.id)
    assert stored is not None and stored.last_error == "40"


async def test_a_running_service_runs_a_job_another_process_adds(postgres_dsn: str) -> None:
    now = datetime.now(UTC)
    gateway, cli = PostgresCronStore(postgres_dsn), PostgresCronStore(postgres_dsn)
    bus, clock = InMemoryBus(), ManualClock(now, until=now + 2 * HOUR)
    inbox = bus.subscribe("telegram")
    asked: list[InboundMessage] = []

    async def agent(message: InboundMessage) -> str:
        asked.append(message)
        return f"done: {message.content}"

    task = asyncio.create_task(CronService(gateway, agent, bus, clock=clock).run())
    try:
        await asyncio.wait_for(clock.parked.wait(), TIMEOUT)  # asleep: only a change it hears can wake it
        await asyncio.to_thread(cli.add, job("tea time", At(now + HOUR), now))
        delivered = await asyncio.wait_for(inbox.get(), TIMEOUT)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (delivered.chat_id, delivered.content) == ("alice", "done: tea time")
    assert [m.content for m in asked] == ["tea time"]
    assert await asyncio.to_thread(cli.jobs) == []  # a one-time job that ran is gone, for every replica


async def test_listening_survives_a_server_restart(postgres_server: PostgresServer, postgres_dsn: str) -> None:
    store = PostgresCronStore(postgres_dsn)
    async with listening(store) as heard:
        postgres_server.stop()
        try:
            with pytest.raises(BackendUnavailable) as down:
                await asyncio.to_thread(store.add, job("while down"))
            text, parts = str(down.value), urlsplit(postgres_dsn)
            assert "\n" not in text and f"127.0.0.1:{parts.port}" in text and PASSWORD not in text
        finally:
            postgres_server.start()
        await asyncio.wait_for(heard.get(), TIMEOUT)  # listening again: whatever changed meanwhile, look
        added = await asyncio.to_thread(store.add, job("after the restart"))
        await asyncio.wait_for(heard.get(), TIMEOUT)
    assert await asyncio.to_thread(store.jobs) == [added]


async def test_calling_it_from_the_event_loop_is_a_clear_error(postgres_dsn: str) -> None:
    with pytest.raises(RuntimeError, match=r"asyncio\.to_thread"):
        PostgresCronStore(postgres_dsn).jobs()
