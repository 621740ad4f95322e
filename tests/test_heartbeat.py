"""The heartbeat acts on HEARTBEAT.md: no LLM call for an empty file, and only news reaches the user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import pytest
from manual_clock import ManualClock

from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.bus.memory import UNROUTED, InMemoryBus
from mofaclaw.errors import ProviderError
from mofaclaw.services.heartbeat import HeartbeatService, HeartbeatSettings, has_tasks, is_ok

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = 1800.0
TIMEOUT = 10
TASKS = "# Heartbeat tasks\n\n- [ ] Tell me when the nightly build is red\n"


class Agent:
    """Stands in for the agent loop's `ask`: gives the scripted answers (or raises them) in order."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[InboundMessage] = []

    async def __call__(self, message: InboundMessage) -> str:
        self.calls.append(message)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@asynccontextmanager
async def beating(service: HeartbeatService, clock: ManualClock, beats: int) -> AsyncIterator[None]:
    """Run the service until it has beaten `beats` times and is asleep again."""
    clock.run_until(START + timedelta(seconds=INTERVAL * (beats + 0.5)))
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(clock.parked.wait(), TIMEOUT)
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def pending(queue: asyncio.Queue[OutboundMessage]) -> list[OutboundMessage]:
    return [queue.get_nowait() for _ in range(queue.qsize())]


async def test_a_file_without_tasks_makes_no_llm_call(tmp_path: Path) -> None:
    template = files("mofaclaw") / "templates" / "workspace" / "HEARTBEAT.md"
    (tmp_path / "HEARTBEAT.md").write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    agent, clock = Agent(), ManualClock(START)
    async with beating(HeartbeatService(tmp_path, agent, InMemoryBus(), clock=clock), clock, beats=3):
        pass
    assert agent.calls == []


async def test_a_missing_file_makes_no_llm_call(tmp_path: Path) -> None:
    agent, clock = Agent(), ManualClock(START)
    async with beating(HeartbeatService(tmp_path, agent, InMemoryBus(), clock=clock), clock, beats=2):
        pass
    assert agent.calls == []


async def test_only_answers_other_than_heartbeat_ok_are_delivered(tmp_path: Path) -> None:
    (tmp_path / "HEARTBEAT.md").write_text(TASKS, encoding="utf-8")
    bus, clock = InMemoryBus(), ManualClock(START)
    inbox = bus.subscribe("telegram")
    agent = Agent("**HEARTBEAT_OK**.", "The nightly build is red: test_login fails.", "heartbeat_ok")
    settings = HeartbeatSettings(interval=INTERVAL, channel="telegram", to="erin")
    async with beating(HeartbeatService(tmp_path, agent, bus, settings, clock=clock), clock, beats=3):
        delivered = pending(inbox)
    assert [(m.channel, m.chat_id, m.content) for m in delivered] == [
        ("telegram", "erin", "The nightly build is red: test_login fails.")
    ]
    turn = agent.calls[0]
    assert (turn.channel, turn.session_key, turn.content) == ("heartbeat", "heartbeat", TASKS)
    assert "HEARTBEAT_OK" in turn.instructions


async def test_a_failed_beat_does_not_stop_the_next(tmp_path: Path) -> None:
    (tmp_path / "HEARTBEAT.md").write_text(TASKS, encoding="utf-8")
    bus, clock = InMemoryBus(), ManualClock(START)
    inbox = bus.subscribe("telegram")
    agent = Agent(ProviderError("upstream is down"), "Build is red.")
    settings = HeartbeatSettings(interval=INTERVAL, channel="telegram", to="erin")
    async with beating(HeartbeatService(tmp_path, agent, bus, settings, clock=clock), clock, beats=2):
        assert [m.content for m in pending(inbox)] == ["Build is red."]


async def test_without_a_channel_nothing_is_sent(tmp_path: Path) -> None:
    (tmp_path / "HEARTBEAT.md").write_text(TASKS, encoding="utf-8")
    bus, clock = InMemoryBus(), ManualClock(START)
    anywhere = bus.subscribe(UNROUTED)
    agent = Agent("Build is red.")
    async with beating(HeartbeatService(tmp_path, agent, bus, clock=clock), clock, beats=1):
        assert pending(anywhere) == []
    assert len(agent.calls) == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# Tasks\n\n## Later\n",
        "<!-- add tasks below\n- [ ] like this -->\n- [ ]\n* [ ]\n- [x]\n1. [ ]\n---\n",
    ],
)
def test_files_without_tasks(text: str) -> None:
    assert not has_tasks(text)


@pytest.mark.parametrize("text", ["- [ ] water the plants", "check the build", "# T\n<!-- c --> ping the server"])
def test_files_with_tasks(text: str) -> None:
    assert has_tasks(text)


@pytest.mark.parametrize("answer", ["HEARTBEAT_OK", " heartbeat_ok\n", "**HEARTBEAT_OK**", "HEARTBEAT_OK."])
def test_ok_answers(answer: str) -> None:
    assert is_ok(answer)


@pytest.mark.parametrize("answer", ["HEARTBEAT_OK, but the disk is full", "OK", ""])
def test_answers_that_are_news(answer: str) -> None:
    assert not is_ok(answer)
