"""The file tools: read, write, edit and list files, confined to the workspace by the path guard."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable, Mapping
from typing import Any

from mofaclaw.agent.tools.base import ToolContext
from mofaclaw.agent.tools.safefs import Spot, Walker
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.errors import ToolError

BINARY_SNIFF_BYTES = 8192
MAX_LIST_ENTRIES = 1000


class _FileTool:
    def __init__(self, settings: ToolSettings) -> None:
        self.settings = settings
        self._walker = Walker(settings.workspace, follow=True, confine=settings.restrict_to_workspace)

    def _locate(self, raw: str, *, create_parents: bool = False) -> Spot:
        return self._walker.locate(raw, create_parents=create_parents)

    async def _off_loop(self, fn: Callable[..., str], raw: str, *args: Any) -> str:
        """Run the blocking file work in a thread; an OS refusal (permissions, a name too long) is
        one line for the model, not a crash."""
        try:
            return await asyncio.to_thread(fn, raw, *args)
        except OSError as exc:
            raise ToolError(f"{raw}: {exc.strerror or exc}") from None


def _text_file(fd: int) -> io.TextIOWrapper:
    return io.TextIOWrapper(os.fdopen(fd, "rb"), encoding="utf-8", errors="replace", newline="")


def _refuse_binary(f: io.TextIOWrapper, shown: str) -> None:
    head = f.buffer.read(BINARY_SNIFF_BYTES)
    if b"\x00" in head:
        raise ToolError(f"{shown} looks like a binary file; read_file only reads text")
    f.buffer.seek(0)


def _read_text_strict(fd: int, shown: str) -> str:
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{shown} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


class ReadFileTool(_FileTool):
    name = "read_file"
    description = (
        "Read a text file. Relative paths start at the workspace. Use offset (first line, 1-based) "
        "and limit (number of lines) to read part of a large file."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File to read"},
            "offset": {"type": "integer", "minimum": 1, "description": "First line to read (1-based)"},
            "limit": {"type": "integer", "minimum": 1, "description": "Maximum number of lines"},
        },
        "required": ["path"],
        "additionalProperties": False,
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        return await self._off_loop(self._read, args["path"], args.get("offset", 1), args.get("limit"))

    def _read(self, raw: str, offset: int, limit: int | None) -> str:
        with self._locate(raw) as spot:
            f = _text_file(spot.open_file())
        with f:
            return self._lines(f, spot.shown, offset, limit)

    def _lines(self, f: io.TextIOWrapper, shown: str, offset: int, limit: int | None) -> str:
        _refuse_binary(f, shown)
        cap = self.settings.read_max_chars
        parts: list[str] = []
        size = 0
        line_no = 0
        stopped_at: int | None = None  # first line not returned, when something was left unread
        char_cut = False
        # Streamed line by line so a huge log costs only what is returned, not the whole file.
        for line_no, line in enumerate(f, start=1):
            if line_no < offset:
                continue
            if limit is not None and len(parts) >= limit:
                stopped_at = line_no
                break
            if size + len(line) > cap:
                char_cut = True
                if parts:
                    stopped_at = line_no
                else:  # one enormous line: return its head rather than nothing
                    parts.append(line[:cap])
                    stopped_at = line_no + 1
                break
            parts.append(line)
            size += len(line)
        if offset > 1 and line_no < offset:
            raise ToolError(f"offset {offset} is past the end of {shown}, which has {line_no} lines")
        text = "".join(parts)
        if not text and stopped_at is None:
            return f"[{shown} is empty]"
        if stopped_at is None:
            return text if offset == 1 else f"{text}\n[Lines {offset}-{line_no} of {shown}; end of file]"
        last = offset + len(parts) - 1
        why = f"Truncated: output is capped at {cap} characters" if char_cut else "More lines follow"
        return f"{text}\n[{why}. Showed lines {offset}-{last} of {shown}; continue with offset={stopped_at}.]"


class WriteFileTool(_FileTool):
    name = "write_file"
    description = (
        "Write text to a file, replacing it if it exists and creating missing parent directories. "
        "Relative paths start at the workspace."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File to write"},
            "content": {"type": "string", "description": "The whole new content of the file"},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        return await self._off_loop(self._write, args["path"], args["content"])

    def _write(self, raw: str, content: str) -> str:
        data = content.encode("utf-8")
        with self._locate(raw, create_parents=True) as spot:
            spot.replace(data)
        return f"Wrote {len(data)} bytes to {spot.shown}"


class EditFileTool(_FileTool):
    name = "edit_file"
    description = (
        "Replace one exact piece of text in a file. old_text must appear exactly once in the file: "
        "include enough surrounding lines to make it unique."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File to edit"},
            "old_text": {"type": "string", "minLength": 1, "description": "Exact text to replace"},
            "new_text": {"type": "string", "description": "Text to put in its place"},
        },
        "required": ["path", "old_text", "new_text"],
        "additionalProperties": False,
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        return await self._off_loop(self._edit, args["path"], args["old_text"], args["new_text"])

    def _edit(self, raw: str, old: str, new: str) -> str:
        with self._locate(raw) as spot:
            return _replace_once(spot, _read_text_strict(spot.open_file(), spot.shown), old, new)


def _replace_once(spot: Spot, content: str, old: str, new: str) -> str:
    shown = spot.shown
    matches = content.count(old)
    if matches == 0:
        raise ToolError(
            f"old_text was not found in {shown} (0 matches); it must match the file exactly, "
            "including whitespace and indentation. Read the file again and copy the text."
        )
    if matches > 1:
        raise ToolError(
            f"old_text matches {matches} times in {shown}; it must match exactly once. "
            "Include more surrounding lines to make it unique."
        )
    spot.replace(content.replace(old, new, 1).encode("utf-8"))
    return f"Edited {shown}: replaced 1 occurrence ({len(old)} characters -> {len(new)} characters)"


class ListDirTool(_FileTool):
    name = "list_dir"
    description = "List a directory's entries, sorted by name, each marked as a file or a directory."
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "Directory to list; '.' is the workspace"},
        },
        "required": ["path"],
        "additionalProperties": False,
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        return await self._off_loop(self._list, args["path"])

    def _list(self, raw: str) -> str:
        with self._locate(raw) as spot:
            fd = spot.open_dir()
        try:
            with os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
        finally:
            os.close(fd)
        if not entries:
            return f"[{spot.shown} is empty]"
        lines = [f"{_mark(entry)} {entry.name}" for entry in entries]
        if len(lines) > MAX_LIST_ENTRIES:
            rest = len(lines) - MAX_LIST_ENTRIES
            lines = [*lines[:MAX_LIST_ENTRIES], f"[... {rest} more entries not shown]"]
        return "\n".join(lines)


def _mark(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "[link]"
    return "[dir] " if entry.is_dir(follow_symlinks=False) else "[file]"
