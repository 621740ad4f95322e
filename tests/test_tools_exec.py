"""The exec tool through the registry: output, timeout, scrubbed environment, deny list and sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from mofaclaw.agent.tools.base import ToolContext, ToolRegistry
from mofaclaw.agent.tools.sandbox import find_bwrap, probe_bwrap
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.agent.tools.shell import ExecTool, sandbox_status
from mofaclaw.types import ToolCall

CTX = ToolContext(channel="test", chat_id="c1", session_key="test:c1")

BWRAP = find_bwrap()
needs_bwrap = pytest.mark.skipif(
    BWRAP is None or not probe_bwrap(BWRAP).ok, reason="bubblewrap is not installed or cannot run here"
)
SANDBOXES = ["none", pytest.param("bwrap", marks=needs_bwrap)]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


def registry(workspace: Path, **overrides: object) -> ToolRegistry:
    overrides.setdefault("exec_sandbox", "none")
    return ToolRegistry([ExecTool(ToolSettings(workspace=workspace, **overrides))])  # type: ignore[arg-type]


async def run(tools: ToolRegistry, command: str, **args: object) -> str:
    return await tools.execute(ToolCall("call-1", "exec", json.dumps({"command": command, **args})), CTX)


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (zombies have an empty command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


async def wait_until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


def unique_sleep() -> str:
    """A sleep duration nobody else uses, so its process can be found in /proc."""
    return f"7.{uuid.uuid4().int % 10**8:08d}"


# --- behaviour -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_reports_stdout_stderr_and_exit_code(workspace: Path, sandbox: str) -> None:
    result = await run(registry(workspace, exec_sandbox=sandbox), "echo out; echo err >&2; exit 3")
    assert result == "exit code: 3\nstdout:\nout\n\nstderr:\nerr\n"


async def test_runs_in_the_workspace_or_in_working_dir(workspace: Path) -> None:
    (workspace / "sub").mkdir()
    tools = registry(workspace)
    assert f"stdout:\n{workspace}\n" in await run(tools, "pwd")
    assert f"stdout:\n{workspace / 'sub'}\n" in await run(tools, "pwd", working_dir="sub")
    outside = await run(tools, "pwd", working_dir="..")
    assert outside.startswith("Error:") and "outside the workspace" in outside


async def test_long_output_is_cut_with_a_note(workspace: Path) -> None:
    result = await run(registry(workspace, exec_max_output_chars=1000), "seq 1 100000")
    assert result.startswith("exit code: 0\nstdout:\n1\n2\n")
    assert "bytes of output cut here" in result
    assert result.rstrip().endswith("100000")  # the end, where errors usually are, is kept
    assert len(result) < 1200


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_timeout_kills_the_whole_process_group(workspace: Path, sandbox: str) -> None:
    duration, outer = unique_sleep(), "3" + unique_sleep()
    command = f"(echo started > started; sleep {duration}; echo late > late) & sleep {outer}"
    result = await run(registry(workspace, exec_timeout=1, exec_sandbox=sandbox), command)
    assert result.startswith("Error: command timed out after 1s and was killed")
    assert (workspace / "started").exists()  # the grandchild was running when the time ran out
    await wait_until(lambda: not processes_with(f"sleep {duration}") and not processes_with(f"sleep {outer}"))
    assert not (workspace / "late").exists()


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_background_processes_do_not_outlive_the_command(workspace: Path, sandbox: str) -> None:
    duration = unique_sleep()
    result = await run(registry(workspace, exec_sandbox=sandbox), f"sleep {duration} & echo done")
    assert result == "exit code: 0\nstdout:\ndone\n"
    await wait_until(lambda: not processes_with(f"sleep {duration}"))


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_cancelling_the_turn_kills_the_command(workspace: Path, sandbox: str) -> None:
    duration = unique_sleep()
    tools = registry(workspace, exec_sandbox=sandbox)
    call = asyncio.create_task(run(tools, f"touch started; sleep {duration}"))
    await wait_until(lambda: (workspace / "started").exists())
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_until(lambda: not processes_with(f"sleep {duration}"))


@needs_bwrap
async def test_in_the_sandbox_even_a_new_session_does_not_outlive_the_command(workspace: Path) -> None:
    # setsid leaves the process group; only the sandbox's pid namespace still catches it.
    duration = unique_sleep()
    result = await run(registry(workspace, exec_sandbox="bwrap"), f"setsid sleep {duration} >/dev/null 2>&1 & echo ok")
    assert result == "exit code: 0\nstdout:\nok\n"
    await wait_until(lambda: not processes_with(f"sleep {duration}"))


async def test_secrets_are_not_in_the_environment(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-should-not-leak")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:telegram-should-not-leak")
    monkeypatch.setenv("MOFACLAW_GATEWAY__API_KEYS", '["gateway-should-not-leak"]')
    monkeypatch.setenv("INNOCENT_LOOKING", "the-configured-secret-value")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:the-configured-secret-value@db/x")
    monkeypatch.setenv("MY_SETTING", "kept")
    tools = registry(workspace, secret_values=("the-configured-secret-value",))
    result = await run(tools, "env")
    assert "should-not-leak" not in result and "the-configured-secret-value" not in result
    for name in ("OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN", "MOFACLAW_", "INNOCENT_LOOKING", "DATABASE_URL"):
        assert name not in result
    assert "MY_SETTING=kept" in result and "PATH=" in result


@pytest.mark.parametrize(
    "command",
    [
        "rm -rf /",
        "sudo rm -rf --no-preserve-root /",
        "rm -fr ~",
        'rm -rf "$HOME"/*',
        "cd /tmp && rm -r -f /etc",
        "mkfs.ext4 /dev/sda1",
        "dd if=/dev/zero of=/dev/sda bs=1M",
        ":(){ :|:& };:",
        "shutdown -h now",
        "echo bye; reboot",
        "systemctl poweroff",
        "chmod -R 777 /",
        "bash -c 'rm -rf /'",
    ],
)
async def test_deny_list_refuses_destructive_commands(workspace: Path, command: str) -> None:
    result = await run(registry(workspace), command)
    assert result.startswith("Error: command refused:"), result


async def test_deny_list_lets_ordinary_deletes_through(workspace: Path) -> None:
    (workspace / "build").mkdir()
    (workspace / "build" / "out.o").write_text("")
    result = await run(registry(workspace), "rm -rf build && echo gone")
    assert result == "exit code: 0\nstdout:\ngone\n"
    assert not (workspace / "build").exists()


# --- the sandbox -----------------------------------------------------------------------------------


@needs_bwrap
async def test_sandbox_sees_only_the_workspace(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_home = Path.home()
    outside = tmp_path / "outside" / "secret.txt"
    outside.parent.mkdir()
    outside.write_text("outside secret")
    home = tmp_path / "userhome"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("home secret")
    monkeypatch.setenv("HOME", str(home))
    tools = registry(workspace, exec_sandbox="bwrap")

    assert "outside secret" not in await run(tools, f"cat {outside}")
    assert "home secret" not in await run(tools, "cat ~/.ssh/id_ed25519")
    listing = await run(tools, f"ls -A {real_home} 2>&1 | head -50")
    assert not set(os.listdir(real_home)) & set(listing.split()), listing
    assert "No such file" in await run(tools, "ls /work /mnt /srv 2>&1")

    wrote = await run(tools, "echo hello > made-inside.txt && cat made-inside.txt")
    assert wrote == "exit code: 0\nstdout:\nhello\n"
    assert (workspace / "made-inside.txt").read_text() == "hello\n"
    system = await run(tools, "touch /usr/mofaclaw-probe")
    assert "Read-only file system" in system


@pytest.fixture
def path_without_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH with bash but no bubblewrap, as on a machine where it is not installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(shutil.which("bash") or "/bin/bash")
    monkeypatch.setenv("PATH", str(bin_dir))


async def test_sandbox_status_says_why(workspace: Path) -> None:
    assert sandbox_status(ToolSettings(workspace, exec_sandbox="none")) == "off (tools.exec.sandbox = none)"
    assert sandbox_status(ToolSettings(workspace, exec_enabled=False)) == "off (tools.exec.enabled = false)"
    if BWRAP and probe_bwrap(BWRAP).ok:
        assert sandbox_status(ToolSettings(workspace)) == "bwrap (active)"


@pytest.mark.usefixtures("path_without_bwrap")
async def test_status_without_bubblewrap(workspace: Path) -> None:
    assert sandbox_status(ToolSettings(workspace)) == "off (bubblewrap not installed)"
    assert sandbox_status(ToolSettings(workspace, exec_sandbox="bwrap")).startswith("unavailable")


@pytest.mark.usefixtures("path_without_bwrap")
async def test_without_bubblewrap_auto_runs_unsandboxed_and_bwrap_refuses(workspace: Path) -> None:
    auto = await run(registry(workspace, exec_sandbox="auto"), "echo ran")
    assert auto == "exit code: 0\nstdout:\nran\n"
    required = await run(registry(workspace, exec_sandbox="bwrap"), "touch ran")
    assert required.startswith("Error: tools.exec.sandbox is 'bwrap' but bubblewrap is not installed")
    assert not (workspace / "ran").exists()
