"""Slash commands any channel can send: /new and /help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

CommandHandler = Callable[[str], Awaitable[str]]  # session key -> reply


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    handler: CommandHandler


class CommandTable:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self.add("help", "list the commands", self._help)

    def add(self, name: str, help: str, handler: CommandHandler) -> None:
        self._commands[name] = Command(name, help, handler)

    def match(self, content: str) -> Command | None:
        text = content.strip()
        if not text.startswith("/"):
            return None
        return self._commands.get(text[1:].split(maxsplit=1)[0].lower() if len(text) > 1 else "")

    async def _help(self, _: str) -> str:
        lines = [f"/{c.name} — {c.help}" for c in self._commands.values()]
        return "Commands:\n" + "\n".join(lines)
