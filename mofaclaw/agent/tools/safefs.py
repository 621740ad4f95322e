"""Safe file access: the path check and the open are one walk of directory fds, so no symlink swap can redirect it."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from mofaclaw.errors import ToolError

MAX_SYMLINKS = 40  # the kernel's own limit: a longer chain is a loop
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting forever, so the
# fstat that refuses it gets to run; O_NOCTTY: a terminal never becomes our controlling one.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class NotFound(ToolError):
    """Nothing exists at the path."""


class Refused(ToolError):
    """The path exists but must not be used: outside the bounds, a symlink where none may be, a special file."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


@dataclass(frozen=True, slots=True)
class Walker:
    """Resolves paths from `root` one component at a time, each opened relative to its parent's fd
    with O_NOFOLLOW. `follow`: a symlink is read and its target walked by the same rules (so it can
    never lead outside); otherwise any symlink on the way is refused. `confine`: nothing outside
    `root` is reachable; otherwise walks start at "/" (relative paths still start at `root`)."""

    root: Path
    follow: bool = True
    confine: bool = True
    what: str = "the workspace"  # how errors name the root

    def locate(self, raw: str, *, create_parents: bool = False, dir_mode: int = 0o777) -> Spot:
        """Where `raw` leads: an open directory and the final name in it (not a symlink, maybe
        missing), or the directory itself. Missing directories on the way are created on request."""
        if not raw.strip():
            raise ToolError("path is empty")
        if "\x00" in raw:
            raise ToolError("path contains a NUL character")
        base_fd, pending = self._start(raw)
        stack, names = [base_fd], []
        links = 0
        try:
            while pending:
                part = pending.popleft()
                if part in ("", "."):
                    continue
                if part == "..":
                    if len(stack) == 1:
                        if self.confine:
                            raise self._outside(raw)
                        continue  # "/.." is "/"
                    os.close(stack.pop())
                    names.pop()
                    continue
                if not pending and not _is_link(stack[-1], part):
                    spot = Spot(stack.pop(), part, self._shown([*names, part]))
                    return spot
                fd = self._open_dir(stack[-1], part, create_parents, dir_mode, [*names, part])
                if fd is not None:
                    stack.append(fd)
                    names.append(part)
                    continue
                # A symlink: walk its target instead, by the same rules.
                shown = self._shown([*names, part])
                if not self.follow:
                    raise Refused(f"{shown} is a symbolic link; it is not followed")
                target = _readlink(stack[-1], part)
                links += 1
                if links > MAX_SYMLINKS:
                    raise Refused(f"too many levels of symbolic links in '{raw}'")
                if os.path.isabs(target):
                    rest = self._below_base(target)
                    if rest is None:
                        raise self._outside(raw, via=shown)
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                    pending.extendleft(reversed(rest))
                else:
                    pending.extendleft(reversed(target.split("/")))
            return Spot(stack.pop(), None, self._shown(names))
        finally:
            for fd in stack:
                os.close(fd)

    def _start(self, raw: str) -> tuple[int, deque[str]]:
        path = os.path.expanduser(raw)
        if self.confine:
            if os.path.isabs(path):
                rest = self._below_base(path)
                if rest is None:
                    raise self._outside(raw)
            else:
                rest = path.split("/")
            try:
                return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), deque(rest)
            except FileNotFoundError:
                raise NotFound(f"{self.what} ({self.root}) does not exist") from None
        absolute = path if os.path.isabs(path) else os.path.join(os.path.realpath(self.root), path)
        return os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), deque(absolute.split("/"))

    def _below_base(self, absolute: str) -> list[str] | None:
        """The components of an absolute path below the walk's base; None when it is not below it."""
        if not self.confine:
            return absolute.split("/")
        parts = absolute.split("/")
        for base in {os.path.realpath(self.root), os.path.abspath(self.root)}:
            prefix = base.rstrip("/").split("/")
            if parts[: len(prefix)] == prefix:
                return parts[len(prefix):]
        return None

    def _open_dir(self, parent: int, part: str, create: bool, mode: int, names: list[str]) -> int | None:
        """The directory `part` opened without following it; None when it is a symlink."""
        for _ in range(3):  # a name swapped between two of our calls is looked at again
            try:
                return os.open(part, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise NotFound(f"{self._shown(names)} does not exist") from None
                with contextlib.suppress(FileExistsError):  # made meanwhile: open what is there now
                    os.mkdir(part, mode, dir_fd=parent)
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                kind = _lkind(parent, part)
                if kind is not None and stat.S_ISLNK(kind):
                    return None
                if kind is not None and not stat.S_ISDIR(kind):
                    raise Refused(f"{self._shown(names)} is not a directory") from None
        raise Refused(f"{self._shown(names)} keeps changing; try again")

    def _shown(self, names: list[str]) -> str:
        if self.confine:
            return "/".join(names) or "."
        full = "/" + "/".join(names)
        base = os.path.realpath(self.root)
        if full == base:
            return "."
        return full[len(base) + 1:] if full.startswith(base + "/") else full

    def _outside(self, raw: str, via: str = "") -> Refused:
        how = f" through the symbolic link {via}" if via else ""
        return Refused(
            f"path '{raw}' leads outside {self.what} ({self.root}){how}; tools.restrict_to_workspace "
            "is on, so only paths inside the workspace are allowed"
        )


def _lkind(dir_fd: int, name: str) -> int | None:
    """The mode of `name` itself (a symlink is not followed); None when it is missing."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None


def _is_link(dir_fd: int, name: str) -> bool:
    mode = _lkind(dir_fd, name)
    return mode is not None and stat.S_ISLNK(mode)


def _readlink(dir_fd: int, name: str) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:  # swapped for something else meanwhile
        raise Refused(f"{name} changed while it was being opened; try again") from None


class Spot:
    """An open directory and a name in it (None: the directory itself). Closes its fd on exit."""

    def __init__(self, dir_fd: int, name: str | None, shown: str) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.shown = shown

    def __enter__(self) -> Spot:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        os.close(self.dir_fd)

    def lstat(self) -> os.stat_result | None:
        try:
            return os.stat(self.name or ".", dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_file(self) -> int:
        """The regular file here, open for reading; anything else is refused before any read."""
        if self.name is None:
            raise Refused(f"{self.shown} is a directory, not a file; use list_dir to see what it contains")
        before = self.lstat()
        if before is None:
            raise NotFound(f"file not found: {self.shown}")
        if not stat.S_ISREG(before.st_mode):
            self._refuse_kind(before.st_mode)
        try:
            fd = os.open(self.name, _READ_FLAGS, dir_fd=self.dir_fd)
        except FileNotFoundError:
            raise NotFound(f"file not found: {self.shown}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused(f"{self.shown} changed while it was being opened; try again") from None
            raise
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # swapped between the lstat and the open
            os.close(fd)
            self._refuse_kind(mode)
        return fd

    def open_dir(self) -> int:
        """The directory here, open for listing."""
        if self.name is None:
            return os.dup(self.dir_fd)
        try:
            return os.open(self.name, _DIR_FLAGS | os.O_NONBLOCK, dir_fd=self.dir_fd)
        except FileNotFoundError:
            raise NotFound(f"directory not found: {self.shown}") from None
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            st = self.lstat()
            if st is not None and stat.S_ISREG(st.st_mode):
                raise Refused(f"{self.shown} is a file, not a directory; use read_file to read it") from None
            raise Refused(f"{self.shown} is not a directory") from None

    def replace(self, data: bytes, new_mode: int = 0o666) -> None:
        """Write `data` as the whole file: a fresh temp file (O_EXCL, O_NOFOLLOW) in the same
        directory, then renamed over the name, so nothing a symlink points to is ever written."""
        if self.name is None:
            raise Refused(f"{self.shown} is a directory; give a file path")
        existing = self.lstat()
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise Refused(f"{self.shown} is a directory; give a file path")
            if not stat.S_ISREG(existing.st_mode):
                self._refuse_kind(existing.st_mode)
        tmp = f".{self.name[:200]}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, new_mode, dir_fd=self.dir_fd)
        try:
            if existing is not None:  # keep the file's permissions, as an in-place write would
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=self.dir_fd)
            raise

    def append(self, data: bytes, new_mode: int = 0o600) -> None:
        """Append to the regular file here (created if missing), never through a symlink."""
        if self.name is None:
            raise Refused(f"{self.shown} is a directory; give a file path")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.name, flags, new_mode, dir_fd=self.dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a symlink, a FIFO, a directory
                raise Refused(f"{self.shown} is not a regular file; nothing was written") from None
            raise
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                self._refuse_kind(mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def _refuse_kind(self, mode: int) -> None:
        if stat.S_ISDIR(mode):
            raise Refused(f"{self.shown} is a directory, not a file; use list_dir to see what it contains")
        if stat.S_ISLNK(mode):
            raise Refused(f"{self.shown} is a symbolic link; it is not followed")
        raise Refused(f"{self.shown} is {_kind(mode)}; only regular files are read or written")


def read_capped(fd: int, max_bytes: int) -> tuple[bytes, bool]:
    """At most `max_bytes` from `fd` (closed after), and whether there was more."""
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    return data[:max_bytes], len(data) > max_bytes
