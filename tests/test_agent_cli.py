"""`mofaclaw agent` through the real command: one-shot, stdin, failures, and the interactive chat on a pty."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
from test_cli_config import mofaclaw
from upstream import ScriptedUpstream


def _configure(home: Path, upstream: ScriptedUpstream, extra: str = "") -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[agents.defaults]\nmodel = "scripted/test-model"\n\n[providers.scripted]\napi_base = "{upstream.base_url}"\n'
        f'api_key = "x"\nmax_retries = 0\n{extra}')
    return {"MOFACLAW_HOME": str(home)}


def test_one_shot_prints_the_answer_and_remembers(mofaclaw_home: Path, upstream: ScriptedUpstream) -> None:
    env = _configure(mofaclaw_home, upstream)
    upstream.reply("Hi! I am mofaclaw.")
    result = mofaclaw("agent", "-m", "Hello", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hi! I am mofaclaw.\n"
    second = mofaclaw("agent", "-m", "-", env=env, stdin="what did I say?\n")
    assert second.stdout.strip() == "echo: what did I say?"
    sent = [m["content"] for m in upstream.requests[1]["messages"][1:]]
    assert sent == ["Hello", "Hi! I am mofaclaw.", "what did I say?\n"]
    listing = mofaclaw("sessions", "list", env=env)
    assert "cli:direct" in listing.stdout and "4" in listing.stdout
    shown = mofaclaw("sessions", "show", "cli:direct", env=env).stdout
    assert "Hi! I am mofaclaw." in shown
    assert mofaclaw("sessions", "delete", "cli:direct", "--yes", env=env).returncode == 0
    assert "No conversations yet." in mofaclaw("sessions", "list", env=env).stdout
    missing = mofaclaw("sessions", "show", "nope", env=env)
    assert missing.returncode == 1 and "no conversation named 'nope'" in missing.stderr


def test_one_shot_provider_failure_is_one_line_and_nonzero(mofaclaw_home: Path, upstream: ScriptedUpstream) -> None:
    env = _configure(mofaclaw_home, upstream)
    upstream.fail(401, "Incorrect API key provided")
    result = mofaclaw("agent", "-m", "Hello", env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0] and "Incorrect API key provided" in lines[0]


def test_no_model_and_no_local_extra_says_how_to_configure(mofaclaw_home: Path) -> None:
    # a provider named but unreachable without a key: the turn fails with which key to set
    mofaclaw_home.mkdir()
    (mofaclaw_home / "config.toml").write_text('[agents.defaults]\nmodel = "groq/llama-3.3-70b"\n')
    result = mofaclaw("agent", "-m", "Hello", env={"MOFACLAW_HOME": str(mofaclaw_home)})
    assert result.returncode == 1 and "GROQ_API_KEY" in result.stderr


def test_interactive_chat_on_a_pseudo_terminal(mofaclaw_home: Path, upstream: ScriptedUpstream) -> None:
    env = {**os.environ, **_configure(mofaclaw_home, upstream), "COLUMNS": "100", "LINES": "40", "TERM": "xterm",
           "PROMPT_TOOLKIT_NO_CPR": "1"}
    (mofaclaw_home / "workspace").mkdir(parents=True, exist_ok=True)
    (mofaclaw_home / "workspace" / "notes.md").write_text("buy milk")
    upstream.tool_calls([("read_file", {"path": "notes.md"})])
    upstream.reply("Your notes say **buy milk**.")
    child = pexpect.spawn(sys.executable, ["-m", "mofaclaw", "agent"], env=env, encoding="utf-8", timeout=20,
                          dimensions=(40, 100))
    try:
        child.expect("you ›")
        child.sendline("what do my notes say?")
        child.expect("↳ read_file notes.md")
        child.expect("Your notes say")
        child.expect("buy milk")  # rendered as Markdown: the ** markers are gone
        child.expect("you ›")
        # Ctrl-C cancels an answer in progress without leaving the chat
        upstream.hang(after_chunks=1)
        child.sendline("tell me a long story")
        upstream.wait_until_sync(lambda: upstream.request_count >= 3)
        child.sendintr()
        child.expect("cancelled")
        upstream.wait_until_sync(lambda: upstream.disconnects >= 1)
        child.expect("you ›")
        child.sendline("/exit")
        child.expect("bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    history = (mofaclaw_home / "history" / "cli_history").read_text()
    assert "what do my notes say?" in history
