"""The exec tool against the security review: root in the sandbox, secrets in /proc, escaped
background processes, the network, and credentials in the environment. Run as root here and in CI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from gateway_harness import GatewayProcess
from test_tools_exec import (
    BWRAP,
    SANDBOXES,
    needs_bwrap,
    path_without_bwrap,
    processes_with,
    registry,
    run,
    unique_sleep,
)
from upstream import ScriptedUpstream

from mofaclaw.agent.tools.sandbox import probe_bwrap
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.agent.tools.shell import sandbox_status, sandbox_warning

__all__ = ["path_without_bwrap"]  # a fixture, used by name

StartGateway = Callable[..., GatewayProcess]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the review's findings are about running as root")


def sandbox_works() -> bool:
    return BWRAP is not None and probe_bwrap(BWRAP).ok


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


# --- root in the sandbox ---------------------------------------------------------------------------


@needs_bwrap
async def test_sandboxed_command_has_no_capabilities(workspace: Path) -> None:
    result = await run(registry(workspace, exec_sandbox="bwrap"), "grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status")
    assert result == ("exit code: 0\nstdout:\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
                      "CapBnd:\t0000000000000000\n")


@as_root
@needs_bwrap
async def test_sandboxed_root_cannot_unmask_remount_or_write_the_host(workspace: Path, tmp_path: Path) -> None:
    tools = registry(workspace, exec_sandbox="bwrap")
    shadow = Path("/etc/shadow").read_text() if Path("/etc/shadow").exists() else ""

    unmasked = await run(tools, "umount /etc/shadow 2>&1; umount -l /etc/shadow 2>&1; cat /etc/shadow")
    assert unmasked.count("must be superuser to unmount") == 2, unmasked
    for line in filter(None, shadow.splitlines()):
        assert line not in unmasked

    marker = Path("/etc/mofaclaw-escape-test")
    remounted = await run(tools, f"mount -o remount,rw /etc 2>&1; mount -o remount,rw / 2>&1; touch {marker} 2>&1")
    assert "must be superuser" in remounted and "Read-only file system" in remounted, remounted
    assert not marker.exists()

    # Writing back the value it has, so even a failing test changes nothing on this machine.
    sysctl = await run(tools, "v=$(cat /proc/sys/vm/overcommit_ratio) && echo \"$v\" > /proc/sys/vm/overcommit_ratio "
                              "&& echo WROTE; mount -o remount,rw /proc 2>&1; umount /proc 2>&1; echo end")
    assert "WROTE" not in sysctl and "Read-only file system" in sysctl, sysctl

    # Outside the workspace nothing on the host can be created: /tmp inside is a private tmpfs.
    outside = tmp_path / "outside.txt"
    created = await run(tools, f"mkdir -p {tmp_path} && touch {outside}; touch /usr/x /opt/x /var/x 2>&1")
    assert not outside.exists() and not Path("/usr/x").exists(), created
    assert created.count("Read-only file system") + created.count("No such file") >= 3, created


@as_root
@needs_bwrap
async def test_sandboxed_command_runs_as_nobody_and_still_owns_the_workspace(workspace: Path) -> None:
    tools = registry(workspace, exec_sandbox="bwrap")
    result = await run(tools, "id -u; echo made > made.txt; echo tmp > /tmp/t && cat /tmp/t; "
                              "touch ~/.cache-test && echo home")
    assert result == "exit code: 0\nstdout:\n65534\ntmp\nhome\n"
    assert (workspace / "made.txt").stat().st_uid == 0  # the user's file, as if they had made it


# --- the parent's environment -------------------------------------------------------------------------


def _environ_probe(gateway_pid: int) -> str:
    """A command that prints what it finds of the secrets in the environ of its parent, of the
    gateway, and of every process it can see."""
    return (
        "for p in $PPID " + str(gateway_pid) + "; do echo \"== $p\"; tr '\\0' '\\n' < /proc/$p/environ "
        "| grep -E '^(PLAIN_MARKER|OPENAI_API_KEY|GH_PAT)='; done 2>&1; "
        "echo \"secrets anywhere: $(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' "
        "| grep -c -e sk-env-secret -e ghp_envsecret)\""
    )


@as_root
@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_command_cannot_read_the_secrets_in_mofaclaw_s_environment(
        start_gateway: StartGateway, upstream: ScriptedUpstream, sandbox: str) -> None:
    gw = start_gateway(config=f'[tools.exec]\nsandbox = "{sandbox}"\n',
                       env={"OPENAI_API_KEY": "sk-env-secret-1234", "GH_PAT": "ghp_envsecret5678",
                            "PLAIN_MARKER": "visible"})
    assert gw.proc is not None
    upstream.tool_calls([("exec", {"command": _environ_probe(gw.proc.pid)})])
    upstream.reply("done")
    client = gw.client(api_key="unused")
    client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "look around"}])
    result = next(m["content"] for m in upstream.requests[1]["messages"] if m["role"] == "tool")
    assert "sk-env-secret" not in result and "ghp_envsecret" not in result, result
    assert "secrets anywhere: 0" in result, result
    if sandbox == "none":
        # The gateway's environ was read (root reads any), and only the secrets were gone from it.
        gateway_part = result.split(f"== {gw.proc.pid}\n", 1)[1]
        assert "PLAIN_MARKER=visible" in gateway_part and "OPENAI_API_KEY=\n" in gateway_part, result
    else:
        assert f"/proc/{gw.proc.pid}/environ: No such file" in result, result  # not even visible


# --- background processes --------------------------------------------------------------------------


def _escapers(a: str, b: str) -> str:
    """A new session holding the output pipe, and a double fork that let go of it; once both are
    running, outside the command's process group."""
    return (f"setsid sh -c 'echo $$ > a.pid; exec sleep {a}' & "
            f"(sh -c 'echo $$ > b.pid; exec sleep {b}' >/dev/null 2>&1 &); "
            "until [ -s a.pid ] && [ -s b.pid ]; do sleep 0.01; done; echo started")


def long_sleep() -> str:
    """A unique sleep that outlasts every wait of these tests: only a kill ends it in time."""
    return "9" + unique_sleep()


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_new_sessions_and_double_forks_do_not_outlive_the_command(workspace: Path, sandbox: str) -> None:
    a, b = long_sleep(), long_sleep()
    result = await run(registry(workspace, exec_sandbox=sandbox), _escapers(a, b))
    assert result == "exit code: 0\nstdout:\nstarted\n"
    assert processes_with(f"sleep {a}") == [] and processes_with(f"sleep {b}") == []


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_escaped_processes_die_on_timeout(workspace: Path, sandbox: str) -> None:
    a, b, outer = long_sleep(), long_sleep(), long_sleep()
    result = await run(registry(workspace, exec_sandbox=sandbox, exec_timeout=2),
                       f"{_escapers(a, b)}; touch started; sleep {outer}")
    assert result.startswith("Error: command timed out after 2s and was killed"), result
    assert (workspace / "started").exists()
    assert not (processes_with(f"sleep {a}") or processes_with(f"sleep {b}") or processes_with(f"sleep {outer}"))


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_escaped_processes_die_when_the_turn_is_cancelled(workspace: Path, sandbox: str) -> None:
    a, b, outer = long_sleep(), long_sleep(), long_sleep()
    call = asyncio.create_task(run(registry(workspace, exec_sandbox=sandbox),
                                   f"{_escapers(a, b)}; touch started; sleep {outer}"))
    await _wait_for(lambda: (workspace / "started").exists())
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not (processes_with(f"sleep {a}") or processes_with(f"sleep {b}") or processes_with(f"sleep {outer}"))


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_escaped_processes_die_with_the_gateway(start_gateway: StartGateway, upstream: ScriptedUpstream,
                                                      mofaclaw_home: Path, sandbox: str) -> None:
    a, b, outer = long_sleep(), long_sleep(), long_sleep()
    gw = start_gateway(config=f'[tools.exec]\nsandbox = "{sandbox}"\n')
    assert gw.proc is not None
    upstream.tool_calls([("exec", {"command": f"{_escapers(a, b)}; touch started; sleep {outer}"})])
    client = gw.client(api_key="unused", max_retries=0)
    request = threading.Thread(target=_ignore_errors, args=(lambda: client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "start it"}]),), daemon=True)
    request.start()
    await _wait_for(lambda: (mofaclaw_home / "workspace" / "started").exists())
    assert processes_with(f"sleep {a}") and processes_with(f"sleep {b}")
    gw.proc.send_signal(signal.SIGKILL)  # no cleanup code of the gateway runs
    await _wait_for(lambda: not (processes_with(f"sleep {a}") or processes_with(f"sleep {b}")
                                 or processes_with(f"sleep {outer}")))
    request.join(10)


def _ignore_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(openai.APIError):  # the gateway is killed under it
        call()


async def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# --- the network -------------------------------------------------------------------------------------


@pytest.fixture
def loopback_port() -> Iterator[int]:
    """A TCP server on loopback, like the gateway or a local database: connections just queue."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@needs_bwrap
async def test_without_network_a_command_cannot_reach_loopback(workspace: Path, loopback_port: int) -> None:
    connect = f"echo hello > /dev/tcp/127.0.0.1/{loopback_port} && echo connected"
    shared = await run(registry(workspace, exec_sandbox="bwrap", exec_network="host"), connect)
    assert "connected" in shared  # the test can fail: with the host's network, it connects
    cut_off = await run(registry(workspace, exec_sandbox="bwrap", exec_network="none"), connect)
    assert "connected" not in cut_off and "Connection refused" in cut_off, cut_off


async def test_no_network_without_a_sandbox_refuses(workspace: Path, loopback_port: int) -> None:
    result = await run(registry(workspace, exec_sandbox="none", exec_network="none"),
                       f"echo hello > /dev/tcp/127.0.0.1/{loopback_port} && touch connected")
    assert result.startswith("Error: tools.exec.network is 'none' but there is no sandbox"), result
    assert not (workspace / "connected").exists()


@pytest.mark.usefixtures("path_without_bwrap")
async def test_no_network_refuses_when_auto_finds_no_sandbox(workspace: Path) -> None:
    result = await run(registry(workspace, exec_sandbox="auto", exec_network="none"), "touch ran")
    assert result.startswith("Error: tools.exec.network is 'none' but there is no sandbox (bubblewrap not installed)")
    assert not (workspace / "ran").exists()


def test_status_says_which_network_commands_get(mofaclaw_home: Path) -> None:
    from test_cli_config import mofaclaw

    mofaclaw_home.mkdir()
    config = mofaclaw_home / "config.toml"
    env = {"MOFACLAW_HOME": str(mofaclaw_home)}
    default = mofaclaw("status", env=env).stdout
    assert "Exec network          │ host (commands reach whatever this machine reaches" in default
    config.write_text('[tools.exec]\nsandbox = "none"\nnetwork = "none"\n')
    refused = mofaclaw("status", env=env).stdout
    assert "Exec network          │ none, but there is no sandbox to enforce it: exec refuses to run" in refused
    assert "Exec sandbox          │ off (tools.exec.sandbox = none); exec refuses to run" in refused
    if sandbox_works():
        config.write_text('[tools.exec]\nnetwork = "none"\n')
        assert "Exec network          │ none (the sandbox has no network)" in mofaclaw("status", env=env).stdout


# --- fail loud, or closed ------------------------------------------------------------------------------


@pytest.mark.usefixtures("path_without_bwrap")
async def test_required_sandbox_refuses_to_run_without_one(workspace: Path) -> None:
    settings = ToolSettings(workspace, exec_sandbox="required")
    result = await run(registry(workspace, exec_sandbox="required"), "touch ran")
    assert result.startswith("Error: tools.exec.sandbox is 'required' but bubblewrap is not installed"), result
    assert not (workspace / "ran").exists()
    assert sandbox_status(settings).startswith("unavailable (bubblewrap not installed")
    assert sandbox_warning(settings) == ("the exec tool will refuse every command: tools.exec.sandbox is "
                                         "'required' but bubblewrap is not installed")


@pytest.mark.usefixtures("path_without_bwrap")
def test_auto_without_bubblewrap_warns(workspace: Path) -> None:
    warning = sandbox_warning(ToolSettings(workspace))
    assert warning is not None and "WITHOUT a sandbox (bubblewrap not installed)" in warning
    assert sandbox_warning(ToolSettings(workspace, exec_enabled=False)) is None


@needs_bwrap
def test_no_warning_when_the_sandbox_works(workspace: Path) -> None:
    assert sandbox_warning(ToolSettings(workspace)) is None
    assert sandbox_warning(ToolSettings(workspace, exec_sandbox="required", exec_network="none")) is None


def test_gateway_start_warns_when_exec_is_unsandboxed(start_gateway: StartGateway) -> None:
    gw = start_gateway(config='[tools.exec]\nsandbox = "none"\n')
    assert "WARNING" in gw.output and "the exec tool runs commands WITHOUT a sandbox" in gw.output


def test_one_shot_agent_warns_when_exec_is_unsandboxed(mofaclaw_home: Path, upstream: ScriptedUpstream) -> None:
    from test_cli_config import mofaclaw

    mofaclaw_home.mkdir()
    (mofaclaw_home / "config.toml").write_text(
        f'[agents.defaults]\nmodel = "scripted/m"\n[providers.scripted]\napi_base = "{upstream.base_url}"\n'
        'api_key = "x"\n[tools.exec]\nsandbox = "none"\n')
    upstream.reply("hi")
    result = mofaclaw("agent", "-m", "hello", env={"MOFACLAW_HOME": str(mofaclaw_home)})
    assert result.stdout == "hi\n"
    assert result.stderr.startswith("warning: the exec tool runs commands WITHOUT a sandbox"), result.stderr


# --- credentials in the environment --------------------------------------------------------------------


async def test_credentials_are_scrubbed_by_name_pattern_and_url(workspace: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    hidden = {
        "GH_PAT": "ghp_1", "DATABASE_URL": "sqlite:///x.db", "SLACK_WEBHOOK_URL": "https://hooks.example/T0/B0",
        "BASIC_AUTH": "dXNlcjpwYXNz", "GOOGLE_CREDS": "{creds}", "SERVICE_TOKEN": "tok-1", "APP_SECRET": "sec-1",
        "DB_PASSWORD": "pw-1", "STRIPE_KEY": "sk_live_1", "UPSTREAM": "postgres://admin:hunter2@db.internal:5432/app",
        "MIRRORS": "https://example.org https://bob:s3cret@mirror.example/pypi",
    }
    kept = {"AUTHOR": "Ada", "HTTP_PROXY": "http://proxy.internal:3128", "REPO": "https://github.com/o/r",
            "CLONE": "git@github.com:o/r.git", "PATHS_SEEN": "a:b"}
    for name, value in {**hidden, **kept}.items():
        monkeypatch.setenv(name, value)
    result = await run(registry(workspace), "env")
    for name, value in hidden.items():
        assert f"{name}=" not in result and value not in result, name
    for name, value in kept.items():
        assert f"{name}={value}\n" in result, name


def test_guarding_the_process_keeps_its_own_use_of_the_secrets(tmp_path: Path) -> None:
    # A fresh process, so the secret is in the environment block it was started with, as for
    # `OPENAI_API_KEY=... mofaclaw gateway`: after the guard, /proc no longer shows it, while
    # os.environ (the provider key fallback) and processes it starts itself still get it.
    script = tmp_path / "guarded.py"
    script.write_text(
        "import os, subprocess\n"
        "from mofaclaw.agent.tools.procguard import guard_process\n"
        "from mofaclaw.agent.tools.shell_policy import is_secret_variable\n"
        "guard_process(lambda name, value: is_secret_variable(name, value))\n"
        "print('proc:', 'sk-block-secret' in open('/proc/self/environ').read())\n"
        "print('os.environ:', os.environ['OPENAI_API_KEY'])\n"
        "print('child:', subprocess.run(['sh', '-c', 'echo $OPENAI_API_KEY'], capture_output=True, text=True)"
        ".stdout.strip())\n"
        )
    env = {**os.environ, "OPENAI_API_KEY": "sk-block-secret", "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert done.stdout.splitlines()[:3] == ["proc: False", "os.environ: sk-block-secret", "child: sk-block-secret"], (
        done.stdout + done.stderr)
