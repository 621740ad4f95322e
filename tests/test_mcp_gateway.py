"""The real `mofaclaw gateway` with MCP servers configured: their tools in a turn, a failing one a single
warning, and nothing left running after it stops."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from gateway_harness import GatewayProcess
from mcp_harness import DEMO, alive
from upstream import ScriptedUpstream


def test_gateway_serves_mcp_tools_and_stops_its_servers(start_gateway: Callable[..., GatewayProcess],
                                                        upstream: ScriptedUpstream, tmp_path: Path) -> None:
    pidfile = tmp_path / "demo.pids"
    gw = start_gateway(config=f"""
[mcp.servers.demo]
command = "{sys.executable}"
args = ["{DEMO}", "--pidfile", "{pidfile}"]
env = {{ DEMO_TOKEN = "s3cret-token" }}

[mcp.servers.broken]
command = "{tmp_path / 'missing-server'}"
""")
    upstream.tool_calls([("mcp_demo_whoami", {}), ("mcp_demo_echo", {"text": "via the gateway"})])
    upstream.reply("The demo server answered.")
    client = gw.client(api_key="unused")
    answer = client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "try mcp"}])
    assert answer.choices[0].message.content == "The demo server answered."
    results = [m["content"] for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
    assert results == ["token is set", "demo says: via the gateway"]
    assert {"mcp_demo_echo", "mcp_read_resource"} <= {t["function"]["name"] for t in upstream.requests[0]["tools"]}
    server_pid = int(pidfile.read_text().split()[0])
    assert alive(server_pid)
    assert gw.stop() == 0
    assert not alive(server_pid)
    warnings = [line for line in gw.lines if "WARNING" in line and "MCP" in line]
    assert len(warnings) == 1 and "MCP server broken failed to start: command not found" in warnings[0]
    assert "s3cret-token" not in gw.output
