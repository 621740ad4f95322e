"""mofaclaw's own workspace files (bootstrap, memory, skills, HEARTBEAT.md), safe from anything planted there."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from mofaclaw.agent.tools.safefs import NotFound, Refused, Walker, read_capped

log = logging.getLogger(__name__)

# Each file goes whole into a prompt: far past this it is a mistake (or /dev/zero behind a name), not notes.
MAX_FILE_BYTES = 256 * 1024


class WorkspaceFiles:
    """Reads and writes paths relative to the workspace without following any symlink, regular files
    only, at most `max_bytes` a read. What must be skipped is skipped with one warning, not raised:
    a planted file must not stop the agent. Blocking: call from a worker thread."""

    def __init__(self, workspace: Path, max_bytes: int = MAX_FILE_BYTES) -> None:
        self._walker = Walker(workspace, follow=False, confine=True)
        self._max_bytes = max_bytes
        self._cache: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()  # turns of several sessions build their prompts at once

    def read(self, rel: str) -> str | None:
        """The file's text; None when it is missing or must be skipped. Re-read only when its
        inode, size or mtime changed: the prompt is built on every turn."""
        try:
            with self._walker.locate(rel) as spot:
                fd = spot.open_file()
        except NotFound:
            return None
        except (Refused, OSError) as exc:
            self._warn(f"skipped {rel}: {exc}")
            return None
        st = os.fstat(fd)
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(rel)
        if cached and cached[0] == identity:
            os.close(fd)
            return cached[1]
        data, truncated = read_capped(fd, self._max_bytes)
        if truncated:
            self._warn(f"{rel} is larger than {self._max_bytes} bytes; only its beginning is used")
        text = data.decode("utf-8", errors="replace")
        with self._lock:
            self._cache[rel] = (identity, text)
        return text

    def subdirectories(self, rel: str) -> list[str]:
        """Names of the real directories (not symlinks) in `rel`, sorted; [] when it cannot be listed."""
        try:
            with self._walker.locate(rel) as spot:
                fd = spot.open_dir()
        except NotFound:
            return []
        except (Refused, OSError) as exc:
            self._warn(f"skipped {rel}: {exc}")
            return []
        try:
            with os.scandir(fd) as entries:
                names = []
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        names.append(entry.name)
                    elif entry.is_symlink():
                        self._warn(f"skipped {rel}/{entry.name}: a symbolic link is not followed")
        finally:
            os.close(fd)
        return sorted(names)

    def replace(self, rel: str, text: str) -> None:
        """Write the whole file through a fresh temp file; raises Refused instead of following a link."""
        with self._walker.locate(rel, create_parents=True, dir_mode=0o700) as spot:
            spot.replace(text.encode("utf-8"), new_mode=0o600)

    def append(self, rel: str, text: str) -> None:
        """Append to the file (created if missing); raises Refused instead of following a link."""
        with self._walker.locate(rel, create_parents=True, dir_mode=0o700) as spot:
            spot.append(text.encode("utf-8"))

    def _warn(self, message: str) -> None:
        # Once per file and reason: the prompt is rebuilt every turn, the log should not repeat it.
        with self._lock:
            if message in self._warned:
                return
            self._warned.add(message)
        log.warning("%s", message)
