"""`mofaclaw mcp list` and `mofaclaw mcp serve` as a user runs them; the [mcp.servers.NAME] config."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp_harness import DEMO
from upstream import ScriptedUpstream

from mofaclaw.config.models import McpServerConfig

ROOT = Path(__file__).resolve().parents[1]


def mofaclaw(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mofaclaw", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MOFACLAW_HOME": str(home), "COLUMNS": "200"})


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def test_mcp_list_shows_connected_failed_and_disabled_servers_without_secrets(mofaclaw_home: Path) -> None:
    write_config(mofaclaw_home, f"""
[mcp.servers.demo]
command = "{sys.executable}"
args = ["{DEMO}"]
env = {{ DEMO_TOKEN = "s3cret-token" }}
tools = ["echo", "add", "whoami"]

[mcp.servers.broken]
command = "/nonexistent/mcp-server"

[mcp.servers.remote]
url = "http://127.0.0.1:9/mcp?key=url-s3cret"
headers = {{ Authorization = "Bearer hdr-s3cret" }}
timeout = 5

[mcp.servers.old]
command = "whatever"
enabled = false
""")
    result = mofaclaw(mofaclaw_home, "mcp", "list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()
    assert lines[0] == f"demo  stdio {sys.executable}  connected"
    assert lines[1] == "  tools: mcp_demo_echo, mcp_demo_add, mcp_demo_whoami"
    assert "hidden by the allow-list: " in lines[2] and "drop_database" in lines[2]
    assert "  prompts: summarize" in lines
    assert "  resources: 1 (read with the mcp_read_resource tool)" in lines
    assert "broken  stdio /nonexistent/mcp-server  failed: command not found: /nonexistent/mcp-server" in lines
    remote = next(line for line in lines if line.startswith("remote"))
    assert remote.startswith("remote  streamable-http http://127.0.0.1:9/mcp  failed: ")
    assert "old  stdio whatever  disabled" in lines
    for secret in ("s3cret-token", "url-s3cret", "hdr-s3cret"):
        assert secret not in out and secret not in result.stderr


def test_mcp_list_without_servers_says_how_to_add_one(mofaclaw_home: Path) -> None:
    result = mofaclaw(mofaclaw_home, "mcp", "list")
    assert result.returncode == 0 and "No MCP servers configured" in result.stdout


def test_bad_mcp_config_is_one_line_without_the_secret(mofaclaw_home: Path) -> None:
    write_config(mofaclaw_home, '[mcp.servers.x]\ncommand = "a"\nurl = "http://h/mcp"\n'
                                'headers = { Authorization = "Bearer hdr-s3cret" }\n')
    result = mofaclaw(mofaclaw_home, "mcp", "list")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "mcp.servers.x" in result.stderr and "exactly one of 'command'" in result.stderr
    assert "hdr-s3cret" not in result.stderr
    write_config(mofaclaw_home, '[mcp.servers."my.server"]\ncommand = "a"\n')
    result = mofaclaw(mofaclaw_home, "mcp", "list")
    assert result.returncode == 2 and "may only hold letters, digits" in result.stderr
    write_config(mofaclaw_home, '[mcp.servers.x]\ncommand = "a"\nenv = { TOKEN = 12345678 }\n')
    result = mofaclaw(mofaclaw_home, "mcp", "list")
    assert result.returncode == 2 and "12345678" not in result.stderr and "mcp.servers.x.env.TOKEN" in result.stderr


def test_example_config_documents_every_mcp_key() -> None:
    text = (ROOT / "config.example.toml").read_text()
    section = text[text.index("# [mcp.servers.NAME]"):]
    uncommented = "\n".join(line[2:] for line in section.splitlines() if line.startswith("# "))
    documented = tomllib.loads(uncommented.replace("[mcp.servers.NAME]", "[mcp.servers.name]"))
    assert set(documented["mcp"]["servers"]["name"]) == set(McpServerConfig.model_fields)


async def test_mcp_serve_answers_an_sdk_client_through_the_agent(mofaclaw_home: Path,
                                                                 upstream: ScriptedUpstream) -> None:
    write_config(mofaclaw_home, f"""
[agents.defaults]
model = "scripted/test-model"

[providers.scripted]
api_base = "{upstream.base_url}"
api_key = "sk-upstream-secret"
max_retries = 0
""")
    upstream.reply("Delegated: the answer is 42.")
    upstream.reply("You asked about the answer.")
    server = StdioServerParameters(command=sys.executable, args=["-m", "mofaclaw", "mcp", "serve"], env={
        "MOFACLAW_HOME": str(mofaclaw_home), "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    async with Client(server, read_timeout_seconds=30) as client:  # the SDK negotiates the newest protocol
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == ["ask"]
        assert set(listed.tools[0].input_schema["properties"]) == {"message", "conversation"}
        result = await client.call_tool("ask", {"message": "what is the answer?", "conversation": "work"})
        assert not result.is_error
        assert isinstance(result.content[0], types.TextContent)
        assert result.content[0].text == "Delegated: the answer is 42."
        again = await client.call_tool("ask", {"message": "what did I ask?", "conversation": "work"})
        assert again.content[0].text == "You asked about the answer."  # type: ignore[union-attr]
        empty = await client.call_tool("ask", {"message": "  "})
        assert empty.is_error and "empty" in empty.content[0].text  # type: ignore[union-attr]
    first, second = upstream.requests
    assert first["messages"][-1] == {"role": "user", "content": "what is the answer?"}
    # the conversation kept its history between the two calls
    assert [m["content"] for m in second["messages"][1:]] == [
        "what is the answer?", "Delegated: the answer is 42.", "what did I ask?"]


def test_agent_one_shot_uses_an_mcp_tool_and_warns_once_about_a_broken_server(mofaclaw_home: Path,
                                                                              upstream: ScriptedUpstream) -> None:
    write_config(mofaclaw_home, f"""
[agents.defaults]
model = "scripted/test-model"

[providers.scripted]
api_base = "{upstream.base_url}"
api_key = "x"
max_retries = 0

[mcp.servers.demo]
command = "{sys.executable}"
args = ["{DEMO}"]

[mcp.servers.broken]
command = "/nonexistent/mcp-server"
""")
    upstream.tool_calls([("mcp_demo_echo", {"text": "from the terminal"})])
    upstream.reply("The demo server said hello.")
    result = mofaclaw(mofaclaw_home, "agent", "-m", "use the demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The demo server said hello.\n"
    assert [m["content"] for m in upstream.requests[1]["messages"] if m["role"] == "tool"] == [
        "demo says: from the terminal"]
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "MCP server broken failed to start: command not found" in warnings[0]


def test_status_names_each_server_without_its_secrets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, '[mcp.servers.files]\ncommand = "/usr/local/bin/files-server --token tok-in-args"\n'
                       'env = { API_TOKEN = "tok-in-env" }\n'
                       '[mcp.servers.docs]\nurl = "https://user:pw-in-url@docs.example.com:8443/mcp?key=tok-in-query"\n'
                       'headers = { Authorization = "Bearer tok-in-header" }\nstartup = "lazy"\n'
                       '[mcp.servers.old]\ncommand = "old-server"\nenabled = false\n')
    result = mofaclaw(home, "status")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "MCP servers" in line)
    assert "docs (https://docs.example.com:8443, lazy)" in line
    assert "files (files-server, eager)" in line and "old (old-server, disabled)" in line
    for secret in ("tok-in-args", "tok-in-env", "pw-in-url", "tok-in-query", "tok-in-header"):
        assert secret not in result.stdout + result.stderr
    write_config(home, "")
    assert "none (add [mcp.servers.NAME]" in mofaclaw(home, "status").stdout
