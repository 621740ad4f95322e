"""Memory consolidation: history that leaves the window is distilled by the LLM into MEMORY.md and HISTORY.md."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from string import Template

from mofaclaw.agent.tools.safefs import Refused
from mofaclaw.agent.tools.workspace_files import WorkspaceFiles
from mofaclaw.providers.base import ChatRequest, LLMProvider, TextDelta
from mofaclaw.session.base import SessionStore, StoredMessage
from mofaclaw.templates import prompt
from mofaclaw.types import ChatMessage

log = logging.getLogger(__name__)

MEMORY_FILE = "memory/MEMORY.md"
HISTORY_FILE = "memory/HISTORY.md"


class MemoryConsolidator:
    def __init__(self, provider: LLMProvider, model: str, store: SessionStore, workspace: Path) -> None:
        self.provider = provider
        self.model = model
        self.store = store
        self._files = WorkspaceFiles(workspace)
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
            try:
                await self._distill(pending)
            except Refused as exc:  # something planted in memory/: say so, keep the messages for later
                log.warning("memory consolidation: nothing saved: %s", exc)
                return False
            await self.store.mark_consolidated(session_key, pending[-1].id)
            return True
        finally:
            self._busy.discard(session_key)

    async def _distill(self, pending: Sequence[StoredMessage]) -> None:
        async with self._write_lock:
            memory = await asyncio.to_thread(self._files.read, MEMORY_FILE)
            request = ChatRequest(
                self.model,
                [ChatMessage("user", Template(prompt("consolidate")).safe_substitute(
                    memory=memory or "(empty)", conversation=_transcript(pending)))],
            )
            text = "".join([e.text async for e in self.provider.stream(request) if isinstance(e, TextDelta)])
            entry, new_memory = _parse(text, pending)
            await asyncio.to_thread(self._write, entry, new_memory)

    def _write(self, entry: str, new_memory: str | None) -> None:
        # Through WorkspaceFiles: a symlink planted at memory/ or at either file (by an exec
        # command, say) is refused, never written through.
        self._files.append(HISTORY_FILE, entry.strip() + "\n\n")
        if new_memory and new_memory.strip():
            self._files.replace(MEMORY_FILE, new_memory.strip() + "\n")


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
