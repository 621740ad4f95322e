"""The cron service runs jobs on time, re-arms them, survives failures and picks up new jobs live."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from manual_clock import ManualClock

from mofaclaw.agent.tools.base import ToolContext, ToolRegistry
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.errors import ProviderError
from mofaclaw.services.cron import CronService
from mofaclaw.services.cron_store import CronJob, CronStore, new_job
from mofaclaw.services.cron_tool import CronTool
from mofaclaw.services.schedule import At, Every
from mofaclaw.types import ToolCall

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TIMEOUT = 10


class Agent:
    """Stands in for the agent loop's `ask`: answers, or fails, per job message."""

    def __init__(self, failures: dict[str, Exception] | None = None) -> None:
        self.failures = failures or {}
        self.calls: list[InboundMessage] = []

    async def __call__(self, message: InboundMessage) -> str:
        self.calls.append(message)
        if message.content in self.failures:
            raise self.failures[message.content]
        return f"done: {message.content}"


@pytest.fixture
def store(tmp_path: Path) -> CronStore:
    return CronStore(tmp_path / "cron" / "jobs.json")


@asynccontextmanager
async def running(service: CronService) -> AsyncIterator[None]:
    task = asyncio.create_task(service.run())
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def next_message(queue: asyncio.Queue[OutboundMessage]) -> OutboundMessage:
    return await asyncio.wait_for(queue.get(), TIMEOUT)


def job(schedule: At | Every, message: str, now: datetime = START, to: str = "alice") -> CronJob:
    return new_job(message[:10], message, schedule, now, channel="telegram", to=to)


def test_concurrent_writers_lose_no_job(store: CronStore) -> None:
    # Two processes (the CLI and the gateway) each with their own store object on the same file.
    writers = [CronStore(store.path), CronStore(store.path)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: writers[i % 2].add(job(Every(60, START), f"job {i}")), range(40)))
    assert sorted(j.message for j in store.jobs()) == sorted(f"job {i}" for i in range(40))


async def test_a_job_runs_at_its_time_delivers_and_rearms(store: CronStore) -> None:
    bus, agent, clock = InMemoryBus(), Agent(), ManualClock(START)
    inbox = bus.subscribe("telegram")
    added = store.add(job(Every(3600, START + HOUR), "summarize my inbox"))
    async with running(CronService(store, agent, bus, clock=clock, watch=False)):
        for n in (1, 2, 3):
            clock.run_until(START + n * HOUR)
            delivered = await next_message(inbox)
            assert (delivered.chat_id, delivered.content, delivered.kind) == (
                "alice",
                "done: summarize my inbox",
                "message",
            )
            [stored] = store.jobs()
            assert (stored.last_run, stored.last_status, stored.next_run) == (
                START + n * HOUR,
                "ok",
                START + (n + 1) * HOUR,
            )
        await asyncio.wait_for(clock.parked.wait(), TIMEOUT)
    assert len(agent.calls) == 3
    turn = agent.calls[0]
    assert (turn.channel, turn.chat_id, turn.session_key) == ("cron", added.id, f"cron:{added.id}")


async def test_a_one_time_job_goes_away_after_it_runs(store: CronStore) -> None:
    bus, agent, clock = InMemoryBus(), Agent(), ManualClock(START, until=START + 2 * HOUR)
    inbox = bus.subscribe("telegram")
    store.add(job(At(START + HOUR), "call Alice"))
    async with running(CronService(store, agent, bus, clock=clock, watch=False)):
        assert (await next_message(inbox)).content == "done: call Alice"
        assert store.jobs() == []
        await asyncio.wait_for(clock.parked.wait(), TIMEOUT)
    assert len(agent.calls) == 1


async def test_a_failing_job_does_not_stop_the_others(store: CronStore) -> None:
    bus, clock = InMemoryBus(), ManualClock(START)
    agent = Agent({"flaky": RuntimeError("boom"), "once": ProviderError("upstream is down")})
    inbox = bus.subscribe("telegram")
    flaky = store.add(job(Every(3600, START + HOUR), "flaky"))
    once = store.add(job(At(START + HOUR), "once", to="bob"))
    store.add(job(Every(3600, START + 1.5 * HOUR), "steady"))
    async with running(CronService(store, agent, bus, clock=clock, watch=False)):
        clock.run_until(START + HOUR)
        failures = {(m.chat_id, m.kind, m.content) for m in [await next_message(inbox), await next_message(inbox)]}
        assert failures == {
            ("alice", "error", "Scheduled job 'flaky' failed: RuntimeError: boom"),
            ("bob", "error", "Scheduled job 'once' failed: upstream is down"),
        }
        clock.run_until(START + 1.5 * HOUR)
        assert (await next_message(inbox)).content == "done: steady"
        clock.run_until(START + 2 * HOUR)
        assert (await next_message(inbox)).kind == "error"  # the failing job is still scheduled
    jobs = {j.id: j for j in store.jobs()}
    assert (jobs[flaky.id].last_status, jobs[flaky.id].next_run) == ("error", START + 3 * HOUR)
    # A failed one-time job stays, disabled, so `cron list --all` shows what went wrong.
    assert (jobs[once.id].enabled, jobs[once.id].last_status, jobs[once.id].last_error) == (
        False,
        "error",
        "upstream is down",
    )


async def test_missed_jobs_run_within_the_grace_period_and_are_skipped_after_it(store: CronStore) -> None:
    bus, agent, clock = InMemoryBus(), Agent(), ManualClock(START)
    inbox = bus.subscribe("telegram")
    # The gateway was down: three jobs fell due before it started.
    two_minutes_ago, three_hours_ago = START - timedelta(minutes=2), START - 3 * HOUR
    recent = store.add(replace(job(Every(3600, two_minutes_ago), "recent"), next_run=two_minutes_ago))
    stale = store.add(replace(job(Every(3600, three_hours_ago), "stale"), next_run=three_hours_ago))
    gone = store.add(job(At(START - HOUR), "gone", now=START - 2 * HOUR))
    async with running(CronService(store, agent, bus, grace_seconds=300, clock=clock, watch=False)):
        assert (await next_message(inbox)).content == "done: recent"
        await asyncio.wait_for(clock.parked.wait(), TIMEOUT)
    assert [m.content for m in agent.calls] == ["recent"]
    jobs = {j.id: j for j in store.jobs()}
    assert (jobs[recent.id].last_status, jobs[recent.id].last_run) == ("ok", START)
    assert (jobs[stale.id].last_status, jobs[stale.id].last_run) == ("missed", None)
    assert jobs[stale.id].next_run == START + HOUR  # back on its grid
    assert (jobs[gone.id].last_status, jobs[gone.id].enabled) == ("missed", False)


async def test_a_job_added_by_the_tool_is_picked_up_and_answers_in_its_chat(store: CronStore) -> None:
    bus, agent, clock = InMemoryBus(), Agent(), ManualClock(START, until=START + HOUR)
    inbox = bus.subscribe("telegram")
    service = CronService(store, agent, bus, clock=clock, watch=False)
    tools = ToolRegistry([CronTool(store, service.wake, clock=clock)])
    chat = ToolContext("telegram", "carol", "telegram:carol")

    add = ToolCall("c1", "cron", json.dumps({"action": "add", "message": "stretch", "at": "2026-03-01T12:30Z"}))
    async with running(service):
        await asyncio.wait_for(clock.parked.wait(), TIMEOUT)  # asleep, with nothing to do
        added = await tools.execute(add, chat)
        assert added.startswith("Scheduled job ")
        delivered = await next_message(inbox)
    assert (delivered.chat_id, delivered.content) == ("carol", "done: stretch")


async def test_the_tool_lists_and_removes_jobs_and_explains_bad_input(store: CronStore) -> None:
    clock = ManualClock(START)
    woken: list[bool] = []
    tools = ToolRegistry([CronTool(store, lambda: woken.append(True), default_tz="Europe/Paris", clock=clock)])
    chat = ToolContext("telegram", "carol", "telegram:carol")

    async def cron(**args: object) -> str:
        return await tools.execute(ToolCall("c1", "cron", json.dumps(args)), chat)

    assert await cron(action="list") == "No scheduled jobs."
    assert "next run 2026-03-02 09:00 CET" in await cron(action="add", message="weather", cron_expr="0 9 * * *")
    [stored] = store.jobs()
    assert (stored.schedule.tz, stored.channel, stored.to) == ("Europe/Paris", "telegram", "carol")
    assert stored.deliver
    assert f"- {stored.id} 'weather': cron '0 9 * * *' (Europe/Paris)" in await cron(action="list")
    assert await cron(action="add", message="x", cron_expr="0 9 * *") == (
        "Error: '0 9 * *' is not a valid cron expression (5 fields: minute hour day-of-month month day-of-week)"
    )
    assert await cron(action="add", message="x", every_seconds=60, tz="Mars/Base") == (
        "Error: unknown timezone 'Mars/Base' (use an IANA name such as 'Europe/Paris')"
    )
    assert await cron(action="remove", job_id="nope") == "Error: no job with id 'nope' (see action 'list')"
    assert await cron(action="remove", job_id=stored.id) == f"Removed job {stored.id}."
    assert store.jobs() == []
    assert woken == [True, True]


async def test_a_job_added_from_the_cli_reaches_a_running_service(store: CronStore, tmp_path: Path) -> None:
    home = tmp_path  # the store fixture lives at tmp_path / "cron" / "jobs.json", where the CLI writes
    now = datetime.now(UTC)
    bus, agent, clock = InMemoryBus(), Agent(), ManualClock(now, until=now + 2 * HOUR)
    inbox = bus.subscribe("telegram")
    async with running(CronService(store, agent, bus, clock=clock)):
        await asyncio.wait_for(clock.parked.wait(), TIMEOUT)  # asleep: only the file watcher can wake it
        at = (now + HOUR).isoformat()
        await _mofaclaw(
            home, "cron", "add", "-n", "tea", "-m", "tea time", "--at", at, "--channel", "telegram", "--to", "dave"
        )
        delivered = await next_message(inbox)
    assert (delivered.chat_id, delivered.content) == ("dave", "done: tea time")
    assert store.jobs() == []


async def _mofaclaw(home: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOFACLAW_")} | {"MOFACLAW_HOME": str(home)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mofaclaw", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
