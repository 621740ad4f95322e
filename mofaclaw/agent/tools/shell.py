"""The exec tool: a shell command in the workspace, time- and output-capped, sandboxed when it can be."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mofaclaw.agent.tools.base import ToolContext
from mofaclaw.agent.tools.paths import display_path, resolve_path
from mofaclaw.agent.tools.procguard import guard_process
from mofaclaw.agent.tools.reaper import reaper_argv
from mofaclaw.agent.tools.sandbox import bwrap_argv, decide, network_status, sandbox_status, sandbox_warning
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.agent.tools.shell_policy import check_command, is_secret_variable, scrub_environment
from mofaclaw.errors import ToolError

__all__ = ["ExecTool", "network_status", "sandbox_status", "sandbox_warning"]

log = logging.getLogger(__name__)

# After the command is gone, how long its pipes may stay open (held by something that escaped its
# process group with setsid) before the output is taken as complete.
_PIPE_GRACE = 2.0
# How long the reaper (or bwrap) gets to take down what the command started before the group is
# killed outright.
_STOP_GRACE = 5.0


class ExecTool:
    name = "exec"
    description = (
        "Run a shell command with bash in the workspace (or in working_dir) and return its stdout, "
        "stderr and exit code. Commands are stopped after a timeout; background processes do not "
        "outlive the command. Interactive programs will not work (stdin is empty)."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "minLength": 1, "description": "The shell command to run"},
            "working_dir": {
                "type": "string",
                "description": "Directory to run in, relative to the workspace; default: the workspace",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    }

    def __init__(self, settings: ToolSettings) -> None:
        self.settings = settings

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        s = self.settings
        command: str = args["command"]
        check_command(command)
        decision = await asyncio.to_thread(decide, s)
        if decision.refusal:
            raise ToolError(decision.refusal)
        bwrap = decision.bwrap
        # The sandbox only contains the workspace, so there a directory outside it cannot exist.
        restrict = s.restrict_to_workspace or bwrap is not None
        cwd = resolve_path(args.get("working_dir") or ".", s.workspace, restrict)
        if not cwd.is_dir():
            raise ToolError(f"working_dir {display_path(cwd, s.workspace)} is not an existing directory")
        env = scrub_environment(os.environ, s.secret_values)
        # Unsandboxed, /proc shows this process to the command; sandboxed, a mistake elsewhere might.
        guard_process(lambda name, value: is_secret_variable(name, value, s.secret_values))
        # The reaper stays in both cases: bwrap itself exits at once on SIGTERM, while the kernel is
        # still emptying its pid namespace; the reaper returns only once every descendant is gone.
        inner = bwrap_argv(bwrap, s.workspace, cwd, command, env, s.exec_network) if bwrap else ["bash", "-c", command]
        argv = reaper_argv(inner)
        log.debug("exec in %s (%s): %s", cwd, "bwrap" if bwrap else "no sandbox", command)
        result = await run_process(argv, cwd, env, s.exec_timeout, s.exec_max_output_chars)
        report = result.render(s.exec_max_output_chars)
        if result.timed_out:
            raise ToolError(
                f"command timed out after {s.exec_timeout:g}s and was killed, together with every "
                f"process it started. Output before it was stopped:\n{report}"
            )
        return report


@dataclass
class _Capture:
    """One output stream: its first and last `limit` bytes, and how many bytes there were in all."""

    limit: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def feed(self, chunk: bytes) -> None:
        # Everything is read, past the limit too, so a chatty command never blocks on a full pipe.
        self.total += len(chunk)
        room = self.limit - len(self.head)
        self.head += chunk[:room] if room > 0 else b""
        rest = chunk[max(room, 0) :]
        if rest:
            self.tail += rest
            del self.tail[: -self.limit]

    def render(self, budget: int) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if self.total == len(self.head) + len(self.tail):  # nothing was dropped while reading
            head = tail = head + tail
            if len(head) <= budget:
                return head
        keep = budget // 2
        shown_head, shown_tail = head[:keep], tail[len(tail) - keep :] if keep else ""
        cut = self.total - len(shown_head.encode()) - len(shown_tail.encode())
        return f"{shown_head}\n[... {cut} bytes of output cut here ...]\n{shown_tail}"


@dataclass
class ProcessResult:
    exit_code: int | None
    stdout: _Capture
    stderr: _Capture
    timed_out: bool

    def render(self, max_chars: int) -> str:
        out_budget, err_budget = _split_budget(self.stdout.total, self.stderr.total, max_chars)
        if self.exit_code is None:
            status = "exit code: none (killed)"
        elif self.exit_code < 0:
            status = f"exit code: {self.exit_code} (killed by signal {_signal_name(-self.exit_code)})"
        else:
            status = f"exit code: {self.exit_code}"
        parts = [status]
        if self.stdout.total:
            parts.append(f"stdout:\n{self.stdout.render(out_budget)}")
        if self.stderr.total:
            parts.append(f"stderr:\n{self.stderr.render(err_budget)}")
        if not (self.stdout.total or self.stderr.total):
            parts.append("(no output)")
        return "\n".join(parts)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _split_budget(out_size: int, err_size: int, total: int) -> tuple[int, int]:
    """Share `total` characters between stdout and stderr; what one does not need goes to the other."""
    half = total // 2
    if err_size <= half:
        return total - err_size, err_size
    if out_size <= half:
        return out_size, total - out_size
    return half, total - half


class _CommandProtocol(asyncio.SubprocessProtocol):
    """Collects the output and signals the exit of the shell itself.

    Process.wait() of asyncio's stream API also waits for the pipes to close (on Python 3.11),
    which a background child holding stdout delays until the timeout; here exit is its own event.
    """

    def __init__(self, limit: int) -> None:
        self.outputs = {1: _Capture(limit), 2: _Capture(limit)}
        self.exited = asyncio.Event()
        self.pipes_closed = asyncio.Event()
        self._open_pipes = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.outputs[fd].feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes:
            self.pipes_closed.set()

    def process_exited(self) -> None:
        self.exited.set()


async def run_process(argv: list[str], cwd: Path, env: dict[str, str], timeout: float, max_chars: int) -> ProcessResult:
    """Run `argv` (the reaper or bwrap, around the command) in its own session; when the command ends,
    times out or is cancelled, it takes down everything the command started, and then the group
    is killed too."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _CommandProtocol(max_chars),
        *argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout):
                await protocol.exited.wait()
        except TimeoutError:
            timed_out = True
    finally:
        pid = transport.get_pid()
        if not protocol.exited.is_set():
            # Timeout or cancelled turn: SIGTERM lets the reaper kill every descendant, even those
            # that left the group with setsid or live in bwrap's pid namespace.
            _signal(pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STOP_GRACE):
                    await protocol.exited.wait()
        # And in any case, whatever is left in the group (the reaper itself, if it was stuck).
        _kill_group(pid)
        try:
            async with asyncio.timeout(_PIPE_GRACE):
                await protocol.exited.wait()
                await protocol.pipes_closed.wait()
        except TimeoutError:
            log.warning("exec: output pipes still open after the command was killed; giving up on them")
        finally:
            transport.close()
    return ProcessResult(transport.get_returncode(), protocol.outputs[1], protocol.outputs[2], timed_out)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _kill_group(pgid: int) -> None:
    # start_new_session made the shell a group leader, so its pid is the group id. The kernel does
    # not reuse an id while a group still uses it; only when the whole group is gone could a new
    # process take the id and make itself a group leader, in the instant before this call.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
