"""The file tools through the registry: what they do, and the workspace guard on every path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mofaclaw.agent.tools.base import ToolContext, ToolRegistry
from mofaclaw.agent.tools.filesystem import EditFileTool, ListDirTool, ReadFileTool, WriteFileTool
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.types import ToolCall

CTX = ToolContext(channel="test", chat_id="c1", session_key="test:c1")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("top secret\n")
    return secret


def registry(workspace: Path, **overrides: object) -> ToolRegistry:
    settings = ToolSettings(workspace=workspace, **overrides)  # type: ignore[arg-type]
    return ToolRegistry(tool(settings) for tool in (ReadFileTool, WriteFileTool, EditFileTool, ListDirTool))


async def call(tools: ToolRegistry, name: str, **args: object) -> str:
    return await tools.execute(ToolCall("call-1", name, json.dumps(args)), CTX)


# --- behaviour -------------------------------------------------------------------------------------


async def test_write_then_read_creates_parent_directories(workspace: Path) -> None:
    tools = registry(workspace)
    result = await call(tools, "write_file", path="notes/day/one.md", content="héllo\nworld\n")
    assert result == "Wrote 13 bytes to notes/day/one.md"
    assert (workspace / "notes/day/one.md").read_text() == "héllo\nworld\n"
    assert await call(tools, "read_file", path="notes/day/one.md") == "héllo\nworld\n"


async def test_read_with_offset_and_limit_says_where_to_continue(workspace: Path) -> None:
    (workspace / "lines.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    tools = registry(workspace)
    result = await call(tools, "read_file", path="lines.txt", offset=3, limit=2)
    assert result.startswith("line 3\nline 4\n")
    assert "lines 3-4" in result and "offset=5" in result
    tail = await call(tools, "read_file", path="lines.txt", offset=9)
    assert tail.startswith("line 9\nline 10\n") and "end of file" in tail
    past = await call(tools, "read_file", path="lines.txt", offset=50)
    assert past.startswith("Error:") and "has 10 lines" in past


async def test_read_truncates_at_the_cap_with_a_note(workspace: Path) -> None:
    (workspace / "big.txt").write_text("".join(f"{n:04d} " + "x" * 94 + "\n" for n in range(100)))  # 100 chars a line
    result = await call(registry(workspace, read_max_chars=1000), "read_file", path="big.txt")
    body, note = result.rsplit("\n[", 1)
    assert len(body) <= 1000 and body.startswith("0000 ")
    assert "Truncated" in note and "1000 characters" in note and "offset=11" in note


async def test_read_refuses_binary_missing_and_directory(workspace: Path) -> None:
    (workspace / "image.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    (workspace / "sub").mkdir()
    tools = registry(workspace)
    assert "binary" in await call(tools, "read_file", path="image.bin")
    missing = await call(tools, "read_file", path="nope.txt")
    assert missing == "Error: file not found: nope.txt"
    assert "is a directory" in await call(tools, "read_file", path="sub")


async def test_edit_replaces_exactly_one_match(workspace: Path) -> None:
    target = workspace / "code.py"
    target.write_text("a = 1\nb = 2\n")
    result = await call(registry(workspace), "edit_file", path="code.py", old_text="b = 2", new_text="b = 3")
    assert result.startswith("Edited code.py")
    assert target.read_text() == "a = 1\nb = 3\n"


async def test_edit_reports_how_many_matches_when_not_exactly_one(workspace: Path) -> None:
    target = workspace / "code.py"
    target.write_text("x = 1\nx = 1\nx = 1\n")
    tools = registry(workspace)
    several = await call(tools, "edit_file", path="code.py", old_text="x = 1", new_text="y")
    assert several.startswith("Error:") and "matches 3 times" in several
    none = await call(tools, "edit_file", path="code.py", old_text="z = 9", new_text="y")
    assert none.startswith("Error:") and "0 matches" in none
    assert target.read_text() == "x = 1\nx = 1\nx = 1\n"


async def test_list_dir_is_sorted_and_marks_kinds(workspace: Path) -> None:
    (workspace / "b.txt").write_text("")
    (workspace / "a_dir").mkdir()
    (workspace / "c.md").write_text("")
    result = await call(registry(workspace), "list_dir", path=".")
    assert result.splitlines() == ["[dir]  a_dir", "[file] b.txt", "[file] c.md"]


async def test_invalid_arguments_come_back_as_an_error(workspace: Path) -> None:
    result = await call(registry(workspace), "read_file", path="x", offset=0)
    assert result.startswith("Error: invalid arguments for read_file")


# --- the workspace guard ---------------------------------------------------------------------------


async def test_absolute_path_outside_is_refused(workspace: Path, outside: Path) -> None:
    result = await call(registry(workspace), "read_file", path=str(outside))
    assert result.startswith("Error:") and "outside the workspace" in result
    assert "top secret" not in result


async def test_dotdot_escape_is_refused(workspace: Path, outside: Path) -> None:
    tools = registry(workspace)
    read = await call(tools, "read_file", path="../outside/secret.txt")
    assert read.startswith("Error:") and "outside the workspace" in read
    write = await call(tools, "write_file", path="sub/../../escaped.txt", content="x")
    assert write.startswith("Error:")
    assert not (workspace.parent / "escaped.txt").exists()


async def test_symlink_planted_inside_is_refused(workspace: Path, outside: Path) -> None:
    (workspace / "link.txt").symlink_to(outside)
    (workspace / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    tools = registry(workspace)
    for name, args in [
        ("read_file", {"path": "link.txt"}),
        ("read_file", {"path": "linkdir/secret.txt"}),
        ("write_file", {"path": "linkdir/new.txt", "content": "x"}),
        ("edit_file", {"path": "link.txt", "old_text": "top", "new_text": "no"}),
        ("list_dir", {"path": "linkdir"}),
    ]:
        result = await call(tools, name, **args)
        assert result.startswith("Error:") and "outside the workspace" in result, (name, args, result)
    assert outside.read_text() == "top secret\n"
    assert not (outside.parent / "new.txt").exists()


async def test_symlink_staying_inside_is_fine(workspace: Path) -> None:
    (workspace / "real.txt").write_text("inside\n")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")
    assert await call(registry(workspace), "read_file", path="alias.txt") == "inside\n"


async def test_everything_is_allowed_when_not_restricted(workspace: Path, outside: Path) -> None:
    (workspace / "link.txt").symlink_to(outside)
    tools = registry(workspace, restrict_to_workspace=False)
    assert await call(tools, "read_file", path=str(outside)) == "top secret\n"
    assert await call(tools, "read_file", path="../outside/secret.txt") == "top secret\n"
    assert await call(tools, "read_file", path="link.txt") == "top secret\n"
