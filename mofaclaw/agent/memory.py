"""Memory consolidation: history that leaves the window is distilled by the LLM into MEMORY.md and HISTORY.md."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from string import Template

from mofaclaw.providers.base import ChatRequest, LLMProvider, TextDelta
from mofaclaw.session.base import SessionStore, StoredMessage
from mofaclaw.templates import prompt
from mofaclaw.types import ChatMessage

log = logging.getLogger(__name__)


class MemoryConsolidator:
    def __init__(self, provider: LLMProvider, model: str, store: SessionStore, workspace: Path) -> None:
        self.provider = provider
        self.model = model
        self.store = store
        self.memory_file = workspace / "memory" / "MEMORY.md"
        self.history_file = workspace / "memory" / "HISTORY.md"
        self._busy: set[str] = set()
        self._write_lock = asyncio.Lock()  # two sessions may consolidate at once; one file

    async def consolidate(self, session_key: str, keep: int) -> bool:
        """Distill the messages older than the last `keep`; False when there was nothing to do
        or this session is already being consolidated. The session itself is never rewritten."""
        if session_key in self._busy:
            return False
        self._busy.add(session_key)
        try:
            pending = await self.store.unconsolidated(session_key, keep)
            if not pending:
                return False
            await self._distill(pending)
            await self.store.mark_consolidated(session_key, pending[-1].id)
            return True
        finally:
            self._busy.discard(session_key)

    async def _distill(self, pending: Sequence[StoredMessage]) -> None:
        async with self._write_lock:
            memory = await asyncio.to_thread(_read, self.memory_file)
            request = ChatRequest(
                self.model,
                [ChatMessage("user", Template(prompt("consolidate")).safe_substitute(
                    memory=memory or "(empty)", conversation=_transcript(pending)))],
            )
            text = "".join([e.text async for e in self.provider.stream(request) if isinstance(e, TextDelta)])
            entry, new_memory = _parse(text, pending)
            await asyncio.to_thread(self._write, entry, new_memory)

    def _write(self, entry: str, new_memory: str | None) -> None:
        self.history_file.parent.mkdir(parents=True, exist_ok=True)
        with self.history_file.open("a", encoding="utf-8") as f:
            f.write(entry.strip() + "\n\n")
        if new_memory and new_memory.strip():
            tmp = self.memory_file.with_suffix(".tmp")
            tmp.write_text(new_memory.strip() + "\n", encoding="utf-8")
            tmp.replace(self.memory_file)


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return ""


def _transcript(messages: Sequence[StoredMessage]) -> str:
    lines = []
    for stored in messages:
        m = stored.message
        if m.role not in ("user", "assistant") or not m.content:
            continue
        when = datetime.fromtimestamp(stored.created_at).strftime("%Y-%m-%d %H:%M")
        lines.append(f"[{when}] {m.role.upper()}: {m.content}")
    return "\n".join(lines)


def _parse(text: str, pending: Sequence[StoredMessage]) -> tuple[str, str | None]:
    """The model's JSON answer; a model that ignores the format still leaves a history entry."""
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1]) if start != -1 else {}
    except json.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    when = datetime.fromtimestamp(pending[0].created_at).strftime("%Y-%m-%d %H:%M")
    entry = str(data.get("history_entry") or f"[{when}] {text.strip()[:2000]}")
    memory = data.get("memory_update")
    if not isinstance(memory, str):
        log.warning("memory consolidation: the model did not return a memory update")
        memory = None
    return entry, memory
