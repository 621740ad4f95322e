"""Builds what the model sees for a turn: the system prompt, the history window and the new message."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo

from mofaclaw.agent.skills import SkillsLoader
from mofaclaw.agent.tools.workspace_files import WorkspaceFiles
from mofaclaw.templates import prompt
from mofaclaw.types import ChatMessage

BOOTSTRAP_FILES = ("AGENTS.md", "SOUL.md", "USER.md", "TOOLS.md", "IDENTITY.md")


class ContextBuilder:
    def __init__(self, workspace: Path, skills: SkillsLoader, timezone: str = "") -> None:
        self.workspace = workspace
        self.skills = skills
        self._tz = ZoneInfo(timezone) if timezone else None
        self._files = WorkspaceFiles(workspace)

    def system_prompt(self, channel: str, chat_id: str, instructions: str = "") -> str:
        """Blocking (it reads the workspace files): `build` runs it in a worker thread."""
        # What changes from turn to turn (the time, the chat) comes last: a prompt whose beginning
        # repeats lets the provider, or the local model, reuse its cached prefix instead of reading
        # the whole prompt again (measured on the local model: first token 1 s -> 14 ms).
        parts = [Template(prompt("system")).safe_substitute(workspace=str(self.workspace))]
        for name in BOOTSTRAP_FILES:
            text = self._files.read(name)
            if text and text.strip():
                parts.append(f"# {name}\n\n{text.strip()}")
        memory = self._files.read("memory/MEMORY.md")
        if memory and memory.strip():
            parts.append(f"# Long-term memory (memory/MEMORY.md)\n\n{memory.strip()}")
        if skills := self.skills.prompt_section():
            parts.append(skills)
        if instructions.strip():
            parts.append(f"# Instructions from the client for this conversation\n\n{instructions.strip()}")
        now = datetime.now(self._tz).astimezone(self._tz)
        parts.append(Template(prompt("now")).safe_substitute(
            now=now.strftime("%Y-%m-%d %H:%M (%A)"), timezone=now.tzname() or "local",
            channel=channel, chat_id=chat_id,
        ).strip())
        return "\n\n---\n\n".join(parts)

    async def build(
        self,
        history: Sequence[ChatMessage],
        content: str | None,
        *,
        channel: str,
        chat_id: str,
        instructions: str = "",
    ) -> list[ChatMessage]:
        """`content` None: no new user message (a turn resumed with the client's tool results)."""
        # Off the event loop: a slow disk (or anything planted in the workspace) must not stall
        # the other turns, the channels or /health.
        text = await asyncio.to_thread(self.system_prompt, channel, chat_id, instructions)
        user = [ChatMessage("user", content)] if content is not None else []
        return [ChatMessage("system", text), *history, *user]
