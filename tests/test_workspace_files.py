"""mofaclaw's own workspace files (bootstrap files, memory, skills, HEARTBEAT.md) with things planted in their place."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from agent_harness import running_agent
from gateway_harness import GatewayProcess
from upstream import Reply, ScriptedUpstream

from mofaclaw.bus.events import InboundMessage
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.services.heartbeat import HeartbeatService

SECRET = "sk-provider-secret-do-not-leak"
CONSOLIDATION = "You maintain the long-term memory"  # how the consolidation prompt begins
TURN = 10.0  # seconds a turn may take here: a hang fails the test instead of freezing it


def _plant_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[providers.openai]\napi_key = "{SECRET}"\n')
    return config


def _plant_specials(workspace: Path) -> None:
    """A FIFO named SOUL.md and USER.md -> /dev/zero, beside a good AGENTS.md."""
    workspace.mkdir(parents=True, exist_ok=True)
    os.mkfifo(workspace / "SOUL.md")
    (workspace / "USER.md").symlink_to("/dev/zero")
    (workspace / "AGENTS.md").write_text("Good instructions survive.")


async def test_a_symlinked_bootstrap_file_never_reaches_the_prompt(
        upstream: ScriptedUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _plant_config(tmp_path)
    async with running_agent(upstream.base_url, tmp_path) as h:
        (h.workspace / "AGENTS.md").symlink_to("../config.toml")
        (h.workspace / "TOOLS.md").symlink_to(h.workspace / "SOUL.md")  # even one pointing inside
        (h.workspace / "SOUL.md").write_text("Be brief.")
        with caplog.at_level(logging.WARNING):
            out = await h.collect((await h.send("hi")).request_id, timeout=TURN)
    assert out[-1].kind == "message"
    system = upstream.requests[0]["messages"][0]["content"]
    assert SECRET not in json.dumps(upstream.requests) and "Be brief." in system
    assert system.count("Be brief.") == 1
    assert "AGENTS.md is a symbolic link" in caplog.text and "TOOLS.md is a symbolic link" in caplog.text


async def test_a_fifo_and_dev_zero_as_bootstrap_files_do_not_stop_a_turn(
        upstream: ScriptedUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _plant_specials(tmp_path / "workspace")
    async with running_agent(upstream.base_url, tmp_path) as h:
        with caplog.at_level(logging.WARNING):
            first = await h.collect((await h.send("hi")).request_id, timeout=TURN)
            second = await h.collect((await h.send("again")).request_id, timeout=TURN)
    assert first[-1].kind == second[-1].kind == "message"
    system = upstream.requests[0]["messages"][0]["content"]
    assert "Good instructions survive." in system and "\x00" not in system
    assert "SOUL.md is a FIFO" in caplog.text and "USER.md is a symbolic link" in caplog.text
    assert caplog.text.count("SOUL.md is a FIFO") == 1  # once, not on every turn


async def test_an_oversized_bootstrap_file_is_cut(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    async with running_agent(upstream.base_url, tmp_path) as h:
        (h.workspace / "USER.md").write_text("start " + "x" * 2_000_000 + " END-MARKER")
        await h.collect((await h.send("hi")).request_id, timeout=TURN)
    system = upstream.requests[0]["messages"][0]["content"]
    assert "start xxx" in system and "END-MARKER" not in system and len(system) < 300_000


def test_the_gateway_stays_healthy_with_special_files_in_the_workspace(
        start_gateway: Callable[..., GatewayProcess], mofaclaw_home: Path, upstream: ScriptedUpstream) -> None:
    _plant_specials(mofaclaw_home / "workspace")
    upstream.hang()  # the turn stays in flight: /health must answer meanwhile
    gw = start_gateway()
    answers: list[str] = []

    def ask() -> None:
        client = gw.client(api_key="unused", timeout=TURN, max_retries=0)
        reply = client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "hi"}])
        answers.append(reply.choices[0].message.content or "")

    asker = threading.Thread(target=ask)
    asker.start()
    upstream.wait_until_sync(lambda: upstream.request_count >= 1, timeout=TURN, what="the turn to reach the model")
    assert httpx.get(gw.base + "/health", timeout=5).json() == {"status": "ok"}
    upstream.release()
    asker.join(TURN)
    assert answers == ["echo: hi"]
    assert "Good instructions survive." in upstream.requests[0]["messages"][0]["content"]
    assert "skipped SOUL.md" in gw.output


async def test_memory_is_never_written_through_a_planted_symlink(
        upstream: ScriptedUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.md").write_text("original\n")
    consolidation = json.dumps({"history_entry": "the user said hi", "memory_update": "- says hi"})

    def answer(body: dict) -> Reply:  # type: ignore[type-arg]
        return Reply(consolidation if CONSOLIDATION in body["messages"][0]["content"] else "ok")

    async with running_agent(upstream.base_url, tmp_path, window=2) as h:
        (h.workspace / "memory").mkdir()
        (h.workspace / "memory" / "MEMORY.md").symlink_to(outside / "target.md")
        (h.workspace / "memory" / "HISTORY.md").symlink_to(outside / "history.md")
        upstream.enqueue(*[answer] * 6)
        with caplog.at_level(logging.WARNING):
            for text in ("one", "two", "three"):
                await h.collect((await h.send(text)).request_id, timeout=TURN)
            await h.agent.drain()
        assert any(CONSOLIDATION in r["messages"][0]["content"] for r in upstream.requests)
        assert sorted(p.name for p in outside.iterdir()) == ["target.md"]
        assert (outside / "target.md").read_text() == "original\n"
        assert "nothing saved" in caplog.text
        assert await h.store.unconsolidated("test:c1", keep=2)  # kept, to be consolidated once fixed
        # the whole memory directory swapped for a symlink: refused the same way
        os.rename(h.workspace / "memory", tmp_path / "old-memory")
        (h.workspace / "memory").symlink_to(outside, target_is_directory=True)
        await h.collect((await h.send("four")).request_id, timeout=TURN)
        await h.agent.drain()
        assert sorted(p.name for p in outside.iterdir()) == ["target.md"]


async def test_memory_files_are_private_and_leave_no_temp_files(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    consolidation = json.dumps({"history_entry": "entry", "memory_update": "- fact"})
    async with running_agent(upstream.base_url, tmp_path, window=2) as h:
        upstream.enqueue(*[lambda body: Reply(consolidation)] * 4)
        for text in ("one", "two"):
            await h.collect((await h.send(text)).request_id, timeout=TURN)
        await h.agent.drain()
        memory = h.workspace / "memory"
        assert sorted(p.name for p in memory.iterdir()) == ["HISTORY.md", "MEMORY.md"]
        assert {oct(p.stat().st_mode & 0o777) for p in memory.iterdir()} == {"0o600"}
        assert oct(memory.stat().st_mode & 0o777) == "0o700"


async def test_a_symlinked_skill_is_skipped(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    _plant_config(tmp_path)
    async with running_agent(upstream.base_url, tmp_path) as h:
        skills = h.workspace / "skills"
        (skills / "stolen").mkdir(parents=True)
        (skills / "stolen" / "SKILL.md").symlink_to(tmp_path / "config.toml")
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "SKILL.md").write_text("---\nname: linked\nalways: true\n---\nLINKED BODY\n")
        (skills / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        os.mkfifo(skills / "fifo-skill")
        (skills / "real").mkdir()
        (skills / "real" / "SKILL.md").write_text("---\nname: real\ndescription: A real one.\n---\nbody\n")
        await h.collect((await h.send("hi")).request_id, timeout=TURN)
    system = upstream.requests[0]["messages"][0]["content"]
    assert "**real** (available): A real one." in system
    assert SECRET not in system and "LINKED BODY" not in system and "stolen" not in system


async def test_the_heartbeat_skips_a_symlinked_or_fifo_heartbeat_file(tmp_path: Path) -> None:
    asked: list[InboundMessage] = []

    async def turn(message: InboundMessage) -> str:
        asked.append(message)
        return "HEARTBEAT_OK"

    secret = tmp_path / "secret.md"
    secret.write_text("- [ ] read this secret task\n")
    (tmp_path / "HEARTBEAT.md").symlink_to(secret)
    service = HeartbeatService(tmp_path, turn, InMemoryBus())
    assert await asyncio.wait_for(service.beat(), TURN) is None
    (tmp_path / "HEARTBEAT.md").unlink()
    os.mkfifo(tmp_path / "HEARTBEAT.md")
    assert await asyncio.wait_for(service.beat(), TURN) is None
    assert asked == []


async def test_the_prompt_follows_every_change_between_turns_and_no_swap_slips_past(
        upstream: ScriptedUpstream, tmp_path: Path) -> None:
    """Turns that find the files as they were reuse the last read; every kind of change is seen at once:
    an edit, a new file, a new skill, a removed one, and a file or folder swapped for a symlink after
    it was read (the swap must not serve what is outside, nor the old text)."""
    _plant_config(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "MEMORY.md").write_text(f"stolen {SECRET}")
    async with running_agent(upstream.base_url, tmp_path) as h:
        ws = h.workspace

        async def prompt() -> str:
            await h.collect((await h.send("hi")).request_id, timeout=TURN)
            return str(upstream.requests[-1]["messages"][0]["content"])

        (ws / "SOUL.md").write_text("Be brief.")
        (ws / "memory").mkdir(exist_ok=True)
        (ws / "memory" / "MEMORY.md").write_text("Ada likes tea.")
        first = await prompt()
        assert "Be brief." in first and "Ada likes tea." in first
        assert (await prompt()).rpartition("# Now")[0] == first.rpartition("# Now")[0]  # nothing changed
        (ws / "SOUL.md").write_text("Be thorough.")  # same size, edited in place
        assert "Be thorough." in await prompt()
        (ws / "USER.md").write_text("The user is called Ada.")
        (ws / "skills" / "weather").mkdir(parents=True)
        (ws / "skills" / "weather" / "SKILL.md").write_text("---\nname: weather\ndescription: forecasts\n---\nx")
        text = await prompt()
        assert "The user is called Ada." in text and "**weather**" in text
        (ws / "skills" / "weather" / "SKILL.md").write_text("---\nname: weather\ndescription: storms\n---\nx")
        assert "storms" in await prompt()
        (ws / "USER.md").unlink()
        assert "The user is called Ada." not in await prompt()
        (ws / "SOUL.md").unlink()
        (ws / "SOUL.md").symlink_to("../config.toml")
        os.rename(ws / "memory", ws / "memory-old")
        (ws / "memory").symlink_to(outside)
        text = await prompt()
    assert "Be thorough." not in text and "Ada likes tea." not in text
    assert SECRET not in json.dumps(upstream.requests)
