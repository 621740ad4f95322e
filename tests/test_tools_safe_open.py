"""The file tools under attack: a directory swapped for a symlink mid-call, FIFOs and devices given as files."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mofaclaw.agent.tools.base import ToolContext, ToolRegistry
from mofaclaw.agent.tools.filesystem import EditFileTool, ListDirTool, ReadFileTool, WriteFileTool
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.types import ToolCall

CTX = ToolContext(channel="test", chat_id="c1", session_key="test:c1")
CALLS = 200
PROMPT = 5.0  # seconds: far more than a refusal takes, far less than "never returns"


def registry(workspace: Path, **overrides: object) -> ToolRegistry:
    settings = ToolSettings(workspace=workspace, **overrides)  # type: ignore[arg-type]
    return ToolRegistry(tool(settings) for tool in (ReadFileTool, WriteFileTool, EditFileTool, ListDirTool))


async def call(tools: ToolRegistry, name: str, **args: object) -> str:
    return await tools.execute(ToolCall("call-1", name, json.dumps(args)), CTX)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    (ws / "d").mkdir(parents=True)
    (ws / "d" / "f.txt").write_text("inside\n")
    return ws


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "f.txt").write_text("OUTSIDE SECRET\n")
    return out


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> None:
    """renameat2(RENAME_EXCHANGE): both names swap in one step, so neither is ever missing."""
    if _libc.renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Swapper:
    """What a concurrent `exec` can do: swap workspace/d with a symlink to `outside` and back, in a tight loop."""

    def __init__(self, workspace: Path, outside: Path) -> None:
        self.directory, self.link = workspace / "d", workspace / "d.link"
        self.link.symlink_to(outside, target_is_directory=True)
        self.swaps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            exchange(self.directory, self.link)
            self.swaps += 1

    def __enter__(self) -> Swapper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.swaps % 2:
            exchange(self.directory, self.link)  # the real directory back at d


@pytest.fixture
def swapper(workspace: Path, outside: Path) -> Iterator[Swapper]:
    # Switch threads far more often than every 5 ms: the swapper, the event loop and the tool's
    # worker thread then interleave as finely as a separate process would.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with Swapper(workspace, outside) as running:
            yield running
    finally:
        sys.setswitchinterval(interval)


async def test_reads_never_leave_the_workspace_while_a_directory_is_swapped(
        workspace: Path, outside: Path, swapper: Swapper) -> None:
    tools = registry(workspace)
    results = [await call(tools, "read_file", path="d/f.txt") for _ in range(CALLS)]
    assert not [r for r in results if "OUTSIDE" in r]
    # the race really ran: some reads met the symlink (and were refused), some the directory
    assert swapper.swaps > 0 and "inside\n" in results and any("outside the workspace" in r for r in results)


async def test_writes_never_leave_the_workspace_while_a_directory_is_swapped(
        workspace: Path, outside: Path, swapper: Swapper) -> None:
    tools = registry(workspace)
    results = [await call(tools, "write_file", path=f"d/new-{n}.txt", content="x") for n in range(CALLS)]
    edits = [await call(tools, "edit_file", path="d/f.txt", old_text="i", new_text="i") for _ in range(CALLS // 4)]
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt"]
    assert (outside / "f.txt").read_text() == "OUTSIDE SECRET\n"
    assert swapper.swaps > 0 and any(r.startswith("Wrote") for r in results)
    assert all(r.startswith(("Edited", "Error:")) for r in edits)


async def test_list_dir_never_shows_the_outside_while_a_directory_is_swapped(
        workspace: Path, outside: Path, swapper: Swapper) -> None:
    tools = registry(workspace)
    results = [await call(tools, "list_dir", path="d") for _ in range(CALLS // 2)]
    assert all("[file] f.txt" in r or r.startswith("Error:") for r in results)
    (outside / "only-outside.txt").write_text("")
    results = [await call(tools, "list_dir", path="d") for _ in range(CALLS // 2)]
    assert not [r for r in results if "only-outside" in r] and swapper.swaps > 0


async def test_read_file_on_a_fifo_answers_at_once(workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    tools = registry(workspace)
    for name, args in [("read_file", {"path": "pipe"}), ("list_dir", {"path": "pipe"}),
                       ("edit_file", {"path": "pipe", "old_text": "a", "new_text": "b"}),
                       ("write_file", {"path": "pipe", "content": "x"})]:
        result = await asyncio.wait_for(call(tools, name, **args), PROMPT)
        assert result.startswith("Error:") and "pipe" in result, (name, result)
    assert stat.S_ISFIFO((workspace / "pipe").stat().st_mode)  # the write did not replace it either


async def test_eight_fifo_reads_leave_the_tools_working(workspace: Path) -> None:
    """The reported starvation: each hung read pinned a worker thread for good."""
    os.mkfifo(workspace / "pipe")
    (workspace / "ok.txt").write_text("fine\n")
    tools = registry(workspace)
    results = await asyncio.wait_for(asyncio.gather(*[call(tools, "read_file", path="pipe") for _ in range(8)]), PROMPT)
    assert all("FIFO" in r for r in results)
    assert await asyncio.wait_for(call(tools, "read_file", path="ok.txt"), PROMPT) == "fine\n"


async def test_devices_are_refused_through_a_symlink_or_with_restrict_off(workspace: Path) -> None:
    (workspace / "zero.txt").symlink_to("/dev/zero")
    restricted = await asyncio.wait_for(call(registry(workspace), "read_file", path="zero.txt"), PROMPT)
    assert restricted.startswith("Error:") and "outside the workspace" in restricted
    open_tools = registry(workspace, restrict_to_workspace=False)
    for path in ("zero.txt", "/dev/zero"):
        result = await asyncio.wait_for(call(open_tools, "read_file", path=path), PROMPT)
        assert result.startswith("Error:") and "device" in result, result
    assert (await call(open_tools, "write_file", path="/dev/null", content="x")).startswith("Error:")


async def test_write_replaces_atomically_keeps_the_mode_and_leaves_no_temp_file(workspace: Path) -> None:
    script = workspace / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o750)
    tools = registry(workspace)
    assert (await call(tools, "write_file", path="run.sh", content="echo new\n")).startswith("Wrote")
    assert script.read_text() == "echo new\n" and stat.S_IMODE(script.stat().st_mode) == 0o750
    assert sorted(p.name for p in workspace.iterdir()) == ["d", "run.sh"]


async def test_a_symlink_inside_is_written_through_and_listed_as_a_link(workspace: Path) -> None:
    (workspace / "alias.txt").symlink_to("d/f.txt")
    tools = registry(workspace)
    assert (await call(tools, "write_file", path="alias.txt", content="new\n")).startswith("Wrote")
    assert (workspace / "d" / "f.txt").read_text() == "new\n" and (workspace / "alias.txt").is_symlink()
    assert "[link] alias.txt" in await call(tools, "list_dir", path=".")


async def test_symlink_loops_are_an_error(workspace: Path) -> None:
    (workspace / "a").symlink_to("b")
    (workspace / "b").symlink_to("a")
    result = await asyncio.wait_for(call(registry(workspace), "read_file", path="a"), PROMPT)
    assert result.startswith("Error:") and "symbolic links" in result


async def test_an_os_refusal_is_one_line(workspace: Path) -> None:
    result = await call(registry(workspace), "write_file", path="x" * 300, content="x")
    assert result == f"Error: {'x' * 300}: File name too long"
