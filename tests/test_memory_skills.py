"""Memory consolidation and skills, observed through what the model is sent and the workspace files."""

from __future__ import annotations

import json
from pathlib import Path

from agent_harness import running_agent
from upstream import ScriptedUpstream

from mofaclaw.agent.skills import SkillsLoader


async def test_history_beyond_the_window_is_consolidated_into_memory(
        upstream: ScriptedUpstream, tmp_path: Path) -> None:
    consolidation = json.dumps({
        "history_entry": "[2026-11-25 09:00] The user said they live in Lyon and like tea.",
        "memory_update": "# Long-term memory\n\n- Lives in Lyon\n- Likes tea",
    })
    async with running_agent(upstream.base_url, tmp_path, window=4) as h:
        for text in ("I live in Lyon", "I like tea"):
            await h.collect((await h.send(text)).request_id)
        assert not (h.workspace / "memory" / "HISTORY.md").exists()  # 4 messages: still inside the window
        upstream.enqueue(*[lambda body: _answer(body, consolidation)] * 2)  # the turn, then consolidation
        await h.collect((await h.send("third message")).request_id)
        await h.agent.drain()
        history = (h.workspace / "memory" / "HISTORY.md").read_text()
        assert "live in Lyon and like tea" in history
        assert "- Likes tea" in (h.workspace / "memory" / "MEMORY.md").read_text()
        # the consolidation saw the messages that left the window, and the session was not rewritten
        marker = "You maintain the long-term memory"
        prompt = next(r for r in upstream.requests if marker in r["messages"][0]["content"])
        assert "I live in Lyon" in prompt["messages"][0]["content"]
        assert len(await h.store.messages("test:c1")) == 6
        assert await h.store.unconsolidated("test:c1", keep=4) == []  # nothing is consolidated twice
        # the next turn carries the new memory in its system prompt
        await h.collect((await h.send("what do you know?")).request_id)
        assert "- Lives in Lyon" in upstream.requests[-1]["messages"][0]["content"]


def _answer(body: dict, consolidation: str):  # type: ignore[no-untyped-def]
    from upstream import Reply

    first = body["messages"][0]["content"]
    return Reply(consolidation if "You maintain the long-term memory" in first else "echo")


async def test_skills_always_in_full_others_summarized_workspace_overrides(
        upstream: ScriptedUpstream, tmp_path: Path) -> None:
    async with running_agent(upstream.base_url, tmp_path) as h:
        skills = h.workspace / "skills"
        (skills / "scheduling").mkdir(parents=True)
        (skills / "scheduling" / "SKILL.md").write_text(
            "---\nname: scheduling\ndescription: My own way of scheduling.\n---\nUse my calendar.\n")
        (skills / "deploy").mkdir()
        (skills / "deploy" / "SKILL.md").write_text(
            "---\nname: deploy\ndescription: Deploy the site.\nrequires:\n  bins: [definitely-not-installed-xyz]\n"
            "  env: [DEPLOY_TOKEN_XYZ]\n---\nRun make deploy.\n")
        (skills / "tone").mkdir()
        (skills / "tone" / "SKILL.md").write_text(
            "---\nname: tone\ndescription: How to talk.\nalways: true\n---\nAlways be cheerful.\n")
        await h.collect((await h.send("hi")).request_id)
        system = upstream.requests[0]["messages"][0]["content"]
        assert "Always be cheerful." in system  # always: included in full
        assert "Run make deploy." not in system  # others: only summarized
        assert "**deploy** (unavailable (missing bin:definitely-not-installed-xyz, env:DEPLOY_TOKEN_XYZ))" in system
        assert "My own way of scheduling." in system and "Use the `cron` tool" not in system  # overridden
        assert "**scheduling** (available)" in system
        assert "## Skill: memory" in system  # the built-in always-on skill
        # a skill added while running is picked up on the next turn
        (skills / "late").mkdir()
        (skills / "late" / "SKILL.md").write_text("---\nname: late\ndescription: Added later.\n---\nbody\n")
        await h.collect((await h.send("again")).request_id)
        assert "**late** (available): Added later." in upstream.requests[1]["messages"][0]["content"]


def test_skill_without_front_matter_uses_its_folder_name(tmp_path: Path) -> None:
    (tmp_path / "skills" / "plain").mkdir(parents=True)
    (tmp_path / "skills" / "plain" / "SKILL.md").write_text("Just instructions.")
    names = {s.name: s for s in SkillsLoader(tmp_path).skills()}
    assert names["plain"].body == "Just instructions." and names["plain"].available


async def test_bootstrap_files_and_context_reach_the_system_prompt(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    async with running_agent(upstream.base_url, tmp_path) as h:
        (h.workspace / "USER.md").write_text("The user is called Ada.")
        (h.workspace / "SOUL.md").write_text("Be brief.")
        await h.collect((await h.send("hi", chat_id="room-7")).request_id)
        system = upstream.requests[0]["messages"][0]["content"]
        assert "The user is called Ada." in system and "Be brief." in system
        assert "Channel: test, chat: room-7" in system and str(h.workspace) in system


async def test_system_prompt_changes_only_at_its_end(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    """Two chats share the prompt's beginning, so providers (and the local model) can reuse its cache."""
    async with running_agent(upstream.base_url, tmp_path) as h:
        await h.collect((await h.send("hi", chat_id="one")).request_id)
        await h.collect((await h.send("hi", chat_id="two")).request_id)
        first, second = (r["messages"][0]["content"] for r in upstream.requests)
        stable, _, now = first.rpartition("# Now")
        assert second.startswith(stable) and "Channel: test, chat: one" in now
        assert "## Skill: memory" in stable and "Date and time" not in stable
