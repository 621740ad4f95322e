"""The agent uses tools of real MCP servers (the SDK's own, over stdio and streamable HTTP) in turns driven
by the scripted upstream: results, errors, timeouts, crashes, list changes, allow-lists, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from agent_harness import Harness, running_agent
from mcp_demo_server import http_app, sse_app
from mcp_harness import alive, children_of, demo_stdio, http_mcp_server, pids, until
from upstream import ScriptedUpstream

from mofaclaw.mcp.servers import McpServers
from mofaclaw.mcp.settings import McpServerSettings


@asynccontextmanager
async def agent_with(upstream: ScriptedUpstream, tmp_path: Path,
                     *servers: McpServerSettings) -> AsyncIterator[tuple[Harness, McpServers]]:
    async with running_agent(upstream.base_url, tmp_path) as h:
        mcp = McpServers(servers, h.agent.runner.tools, log_dir=tmp_path / "logs")
        async with mcp.running():
            yield h, mcp


async def turn(h: Harness, text: str = "go", chat_id: str = "c1") -> str:
    message = await h.send(text, chat_id=chat_id)
    out = await h.collect(message.request_id, timeout=30)
    assert out[-1].kind == "message", out[-1].content
    return out[-1].content


def tool_results(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def offered(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"] for t in request.get("tools", [])}


async def test_agent_calls_stdio_server_tools_and_reads_resources(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.tool_calls([("mcp_demo_echo", {"text": "hi"}), ("mcp_demo_add", {"a": 2, "b": 3}),
                         ("mcp_demo_picture", {}), ("mcp_demo_pointer", {})])
    upstream.tool_calls([("mcp_read_resource", {"server": "demo"}),
                         ("mcp_read_resource", {"server": "demo", "uri": "demo://notes"}),
                         ("mcp_demo_add", {"a": "two"})])
    upstream.reply("All done.")
    async with agent_with(upstream, tmp_path, demo_stdio(tmp_path)) as (h, _):
        assert await turn(h) == "All done."
        tools = offered(upstream.requests[0])
        assert tools["mcp_demo_echo"]["description"] == "Say the text back."
        assert tools["mcp_demo_add"]["parameters"]["required"] == ["a", "b"]
        echo, add, picture, pointer = tool_results(upstream.requests[1])
        assert echo == "demo says: hi"
        assert '"sum": 5' in add or '"sum":5' in add
        assert "here is a dot" in picture and "[image: image/png, 16 bytes" in picture
        assert "demo://notes" in pointer and "the team notes" in pointer
        listing, notes, bad_args = tool_results(upstream.requests[2])[4:]
        assert "demo://notes — notes (text/plain)" in listing
        assert notes.endswith("buy milk")
        assert bad_args.startswith("Error: invalid arguments for mcp_demo_add")
        server_pid = pids(tmp_path)[0]
        assert alive(server_pid)
    assert not alive(server_pid)  # the agent stopped: so did its server


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_http_server_with_secret_header(upstream: ScriptedUpstream, tmp_path: Path, transport: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = http_app() if transport == "streamable-http" else sse_app()
    with http_mcp_server(app, token="hdr-s3cret") as url:
        url = url if transport == "streamable-http" else url.removesuffix("/mcp") + "/sse"
        web = McpServerSettings(name="web", transport=transport, url=url,  # type: ignore[arg-type]
                                headers={"Authorization": "Bearer hdr-s3cret"}, timeout=10)
        upstream.tool_calls([("mcp_web_echo", {"text": "over http"})])
        upstream.reply("ok")
        async with agent_with(upstream, tmp_path, web) as (h, mcp):
            assert mcp.states["web"].state == "connected"
            assert await turn(h) == "ok"
            assert tool_results(upstream.requests[1]) == ["demo says: over http"]
    assert "hdr-s3cret" not in caplog.text and "hdr-s3cret" not in repr(web)


async def test_http_server_that_went_away_is_reconnected_when_it_is_back(upstream: ScriptedUpstream,
                                                                         tmp_path: Path) -> None:
    first = http_mcp_server(http_app(), token="t")
    url = first.__enter__()
    web = McpServerSettings(name="web", transport="streamable-http", url=url, headers={"Authorization": "Bearer t"})
    async with agent_with(upstream, tmp_path, web) as (h, mcp):
        await asyncio.to_thread(first.__exit__, None, None, None)  # the server stops
        upstream.tool_calls([("mcp_web_echo", {"text": "anyone?"})])
        upstream.reply("It is down.")
        assert await turn(h) == "It is down."
        assert tool_results(upstream.requests[1])[0].startswith("Error: MCP server 'web'")
        with http_mcp_server(http_app(), token="t", port=int(url.rsplit(":", 1)[1].split("/")[0])):
            await until(lambda: mcp.states["web"].state == "connected", what="a reconnect")
            upstream.tool_calls([("mcp_web_echo", {"text": "back"})])
            upstream.reply("It is back.")
            assert await turn(h) == "It is back."
            assert tool_results(upstream.requests[3])[-1] == "demo says: back"


async def test_allow_list_hides_tools(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.tool_calls([("mcp_demo_drop_database", {})])
    upstream.reply("I could not.")
    async with agent_with(upstream, tmp_path, demo_stdio(tmp_path, tools=("echo", "a*"))) as (h, _):
        assert await turn(h) == "I could not."
        assert {n for n in offered(upstream.requests[0]) if n.startswith("mcp_demo")} == {"mcp_demo_echo",
                                                                                          "mcp_demo_add"}
        assert tool_results(upstream.requests[1])[0].startswith("Error: unknown tool 'mcp_demo_drop_database'")
    assert not (tmp_path / "marks" / "dropped").exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["2026", "2025"])
async def test_hanging_tool_times_out_and_is_cancelled_on_the_server(upstream: ScriptedUpstream, tmp_path: Path,
                                                                    legacy: bool) -> None:
    upstream.tool_calls([("mcp_demo_hang", {})])
    upstream.reply("It took too long.")
    async with agent_with(upstream, tmp_path, demo_stdio(tmp_path, legacy=legacy, timeout=1.0)) as (h, _):
        assert await turn(h) == "It took too long."
        result = tool_results(upstream.requests[1])[0]
        assert result.startswith("Error:") and "timed out after 1s and was cancelled" in result
        # the SDK sent notifications/cancelled: the server's handler was interrupted
        await until(lambda: (tmp_path / "marks" / "cancelled").exists(), what="the server's cancellation")


async def test_cancelled_turn_cancels_the_call_on_the_server(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.tool_calls([("mcp_demo_hang", {})])
    async with agent_with(upstream, tmp_path, demo_stdio(tmp_path)) as (h, _):
        message = await h.send("wait for it")
        await until(lambda: (tmp_path / "marks" / "hanging").exists(), what="the call to start")
        await h.send("", kind="cancel", request_id=message.request_id)
        await until(lambda: (tmp_path / "marks" / "cancelled").exists(), what="the server's cancellation")


async def test_crashed_server_is_reconnected(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.tool_calls([("mcp_demo_crash", {})])
    upstream.reply("It crashed.")
    async with agent_with(upstream, tmp_path, demo_stdio(tmp_path)) as (h, mcp):
        first = mcp.states["demo"].connection
        assert await turn(h) == "It crashed."
        assert tool_results(upstream.requests[1])[0].startswith("Error: MCP server 'demo' closed the connection")
        await until(lambda: mcp.states["demo"].state == "connected" and mcp.states["demo"].connection is not first,
                    what="a reconnect")
        upstream.tool_calls([("mcp_demo_echo", {"text": "again"})])
        upstream.reply("Back.")
        assert await turn(h) == "Back."
        assert tool_results(upstream.requests[3])[-1] == "demo says: again"
        assert len(pids(tmp_path)) == 2  # a second process serves now


@pytest.mark.parametrize("era", ["2026 (subscriptions/listen)", "2025 (notifications/tools/list_changed)"])
async def test_tool_list_change_is_picked_up_without_restart(upstream: ScriptedUpstream, tmp_path: Path,
                                                             era: str) -> None:
    legacy = era.startswith("2025")
    upstream.tool_calls([("mcp_demo_grow", {})])
    upstream.reply("Grown.")
    async with agent_with(upstream, tmp_path, demo_stdio(tmp_path, legacy=legacy)) as (h, mcp):
        connection = mcp.states["demo"].connection
        assert connection is not None and connection.client is not None
        assert (connection.client.protocol_version == "2025-11-25") == legacy
        assert await turn(h) == "Grown."
        assert "mcp_demo_late" not in offered(upstream.requests[0])
        registry = h.agent.runner.tools
        await until(lambda: registry.get("mcp_demo_late") is not None, what="the new tool")
        upstream.tool_calls([("mcp_demo_late", {})])
        upstream.reply("Used it.")
        assert await turn(h) == "Used it."
        assert "mcp_demo_late" in offered(upstream.requests[2])
        assert tool_results(upstream.requests[3])[-1] == "late tool here"


async def test_lazy_server_connects_in_the_background(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    go = tmp_path / "go"
    lazy = demo_stdio(tmp_path, "lazy", "--start-when", str(go), startup="lazy")
    upstream.reply("Answered without waiting.")
    async with agent_with(upstream, tmp_path, lazy) as (h, mcp):
        # the first turn does not wait for a lazy server
        assert await turn(h) == "Answered without waiting."
        assert mcp.states["lazy"].state == "connecting"
        assert not any(n.startswith("mcp_lazy_") for n in offered(upstream.requests[0]))
        go.touch()
        await until(lambda: mcp.states["lazy"].state == "connected", what="the lazy server")
        upstream.tool_calls([("mcp_lazy_echo", {"text": "later"})])
        upstream.reply("ok")
        assert await turn(h) == "ok"
        assert tool_results(upstream.requests[2]) == ["demo says: later"]


async def test_stubborn_server_and_its_children_are_killed_on_shutdown(upstream: ScriptedUpstream,
                                                                      tmp_path: Path) -> None:
    import os

    async with agent_with(upstream, tmp_path, demo_stdio(tmp_path, "stubborn", "--stubborn")) as (_, mcp):
        assert mcp.states["stubborn"].state == "connected"
        server, grandchild = pids(tmp_path, "stubborn")
        assert alive(server) and alive(grandchild)
        assert server in children_of(os.getpid())
    # it ignored its stdin closing and SIGTERM: the process group was killed, nothing is left
    assert not alive(server) and not alive(grandchild)
    assert server not in children_of(os.getpid())


async def test_failing_server_is_one_warning_and_the_agent_still_answers(
        upstream: ScriptedUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    broken = McpServerSettings(name="broken", transport="stdio", command=str(tmp_path / "no-such-server"))
    upstream.tool_calls([("mcp_read_resource", {"server": "broken"})])
    upstream.reply("That server is down.")
    async with agent_with(upstream, tmp_path, broken, demo_stdio(tmp_path)) as (h, mcp):
        state = mcp.states["broken"]
        assert state.state == "failed" and "command not found" in state.last_error
        assert mcp.states["demo"].state == "connected"
        assert await turn(h) == "That server is down."
        result = tool_results(upstream.requests[1])[0]
        assert result.startswith("Error: MCP server 'broken' is not connected (command not found")
        await until(lambda: state.attempts >= 3, what="two retries")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("MCP server broken failed to start: command not found")


async def test_secret_env_reaches_the_server_but_no_log(upstream: ScriptedUpstream, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = demo_stdio(tmp_path, env={"DEMO_TOKEN": "s3cret-token"})
    upstream.tool_calls([("mcp_demo_whoami", {})])
    upstream.reply("ok")
    async with agent_with(upstream, tmp_path, settings) as (h, _):
        assert await turn(h) == "ok"
        assert tool_results(upstream.requests[1]) == ["token is set"]
    assert "s3cret-token" not in caplog.text and "s3cret-token" not in repr(settings)
    assert "s3cret-token" not in (tmp_path / "logs" / "mcp-demo.log").read_text()
