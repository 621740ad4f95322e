"""Runs one unsandboxed exec command under a child subreaper, so nothing it starts outlives it.

`setsid cmd &` or a double fork leaves the command's process group, so killing the group misses
them; but as a child subreaper (PR_SET_CHILD_SUBREAPER) this process becomes the parent of every
orphan below it, so all of them stay its descendants. When the command exits, when mofaclaw sends
SIGTERM (timeout, cancelled turn), or when mofaclaw itself dies (PR_SET_PDEATHSIG), it kills every
descendant and then exits the way the command did. Also the command's parent: its environment is
the scrubbed one, so /proc/$PPID/environ holds nothing secret.

Run as a script (`python -I -S reaper.py PARENT_PID COMMAND...`): standard library only, and few
imports, since every unsandboxed command waits for this interpreter to start.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class _Stop(Exception):
    pass


def reaper_argv(command: list[str]) -> list[str]:
    """The command line that runs `command` under the reaper, for a process whose parent is us."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), *command]


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except AttributeError:  # not Linux: no subreapers here; mofaclaw still kills the process group
        return _exec(command)
    if prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"mofaclaw exec: cannot become a subreaper: {os.strerror(ctypes.get_errno())}")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    status = None
    try:
        if os.getppid() != parent:  # mofaclaw died before the death signal was armed
            raise _Stop
        child = os.fork()
        if child == 0:
            _exec(command)
        status = _wait_for(child)
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        _kill_descendants()
    _exit_like(status)


def _exec(command: list[str]) -> None:
    """Replace this process with `command`; does not return."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        os.write(2, f"mofaclaw exec: {command[0]}: {exc.strerror}\n".encode())
    os._exit(127)


def _wait_for(child: int) -> int:
    """The wait status of `child`; orphans handed to us meanwhile are reaped as they die."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            return status


def _kill_descendants() -> None:
    """SIGKILL every descendant until none is left; the ones they fork meanwhile come back to us."""
    me = os.getpid()
    while True:
        for pid in _descendants(me):
            try:  # noqa: SIM105 (contextlib would cost an import at every command's start)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _exit_like(status: int | None) -> None:
    if status is None:  # stopped from outside: end the way a command killed by SIGTERM would
        status = int(signal.SIGTERM)  # the wait status of a process killed by that signal
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashed command must not dump us too
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
