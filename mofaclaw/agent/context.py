"""Builds what the model sees for a turn: the system prompt, the history window and the new message."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo

from mofaclaw.agent.skills import SkillsLoader
from mofaclaw.templates import prompt
from mofaclaw.types import ChatMessage

BOOTSTRAP_FILES = ("AGENTS.md", "SOUL.md", "USER.md", "TOOLS.md", "IDENTITY.md")


class _FileCache:
    """File texts re-read only when their mtime changes: the prompt is built on every turn."""

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[float, str]] = {}

    def read(self, path: Path) -> str | None:
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            self._entries.pop(path, None)
            return None
        cached = self._entries.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        text = path.read_text("utf-8", errors="replace")
        self._entries[path] = (mtime, text)
        return text


class ContextBuilder:
    def __init__(self, workspace: Path, skills: SkillsLoader, timezone: str = "") -> None:
        self.workspace = workspace
        self.skills = skills
        self._tz = ZoneInfo(timezone) if timezone else None
        self._files = _FileCache()

    def system_prompt(self, channel: str, chat_id: str, instructions: str = "") -> str:
        # What changes from turn to turn (the time, the chat) comes last: a prompt whose beginning
        # repeats lets the provider, or the local model, reuse its cached prefix instead of reading
        # the whole prompt again (measured on the local model: first token 1 s -> 14 ms).
        parts = [Template(prompt("system")).safe_substitute(workspace=str(self.workspace))]
        for name in BOOTSTRAP_FILES:
            text = self._files.read(self.workspace / name)
            if text and text.strip():
                parts.append(f"# {name}\n\n{text.strip()}")
        memory = self._files.read(self.workspace / "memory" / "MEMORY.md")
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

    def build(
        self,
        history: Sequence[ChatMessage],
        content: str | None,
        *,
        channel: str,
        chat_id: str,
        instructions: str = "",
    ) -> list[ChatMessage]:
        """`content` None: no new user message (a turn resumed with the client's tool results)."""
        system = ChatMessage("system", self.system_prompt(channel, chat_id, instructions))
        user = [ChatMessage("user", content)] if content is not None else []
        return [system, *history, *user]
