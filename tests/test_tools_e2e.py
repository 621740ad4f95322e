"""The tools driven by the model through real turns: the gateway with its workspace, and subagents."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from agent_harness import running_agent
from gateway_harness import GatewayProcess
from upstream import ScriptedUpstream

from mofaclaw.agent.runner import TurnRunner, TurnSettings
from mofaclaw.agent.subagent import SubagentManager
from mofaclaw.agent.tools.base import ToolRegistry
from mofaclaw.agent.tools.builtin import build_tools
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.agent.tools.spawn import SpawnTool

StartGateway = Callable[..., GatewayProcess]


def _tool_results(request: dict) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def test_file_and_shell_tools_through_the_gateway(start_gateway: StartGateway, upstream: ScriptedUpstream,
                                                  mofaclaw_home: Path) -> None:
    gw = start_gateway(env={"OPENAI_API_KEY": "sk-should-never-leak", "MY_SERVICE_TOKEN": "tok-123"})
    upstream.tool_calls([("write_file", {"path": "notes/todo.md", "content": "- buy milk\n"})])
    upstream.tool_calls([("edit_file", {"path": "notes/todo.md", "old_text": "milk", "new_text": "oat milk"}),
                         ("exec", {"command": "cat notes/todo.md; env | grep -c -i -E 'sk-should|tok-123' || true"}),
                         ("read_file", {"path": "/etc/hostname"})])
    upstream.reply("Done: your list says oat milk.")
    client = gw.client(api_key="unused")
    answer = client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "note milk"}],
                                            extra_body={"conversation_id": "tools"})
    assert answer.choices[0].message.content == "Done: your list says oat milk."
    workspace = mofaclaw_home / "workspace"
    assert (workspace / "notes" / "todo.md").read_text() == "- buy oat milk\n"
    write_result = _tool_results(upstream.requests[1])[0]
    assert "bytes" in write_result and "notes/todo.md" in write_result
    edit, shell, escape = _tool_results(upstream.requests[2])[1:]
    assert "Error" not in edit
    assert "- buy oat milk" in shell and "\n0" in shell  # no secret in the command's environment
    assert escape.startswith("Error:") and "outside the workspace" in escape


async def test_spawned_subagent_reports_back_to_the_origin_chat(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.tool_calls([("spawn", {"task": "list the files in the workspace", "label": "files"})])
    upstream.reply("I started a background task.")
    async with running_agent(upstream.base_url, tmp_path) as h:
        runner = h.agent.runner
        tools = ToolRegistry(build_tools(ToolSettings(workspace=h.workspace, exec_sandbox="none"), h.bus))
        h.agent.runner = TurnRunner(runner.provider, tools, TurnSettings("scripted-model", 5))
        manager = SubagentManager(runner.provider, h.agent.runner, h.bus, h.workspace, max_iterations=3)
        tools.register(SpawnTool(manager))
        (h.workspace / "report.txt").write_text("x")
        upstream.tool_calls([("list_dir", {"path": "."})])  # the subagent's first step
        upstream.reply("The workspace holds report.txt.")  # the subagent's answer
        upstream.reply("Your background task finished: the workspace holds report.txt.")  # the relay
        first = await h.send("what files do I have? do it in the background", chat_id="room")
        out = await h.collect(first.request_id)
        assert out[-1].content == "I started a background task."
        assert "Started subagent" in _tool_results(upstream.requests[1])[0]
        # the subagent's result comes back through the bus as a message for the same chat, where the
        # main agent turns it into a reply in that conversation
        report = await asyncio.wait_for(_next_final(h), 10)
        assert report.chat_id == "room" and "report.txt" in report.content
        subagent_requests = [r for r in upstream.requests if "subagent of mofaclaw" in r["messages"][0]["content"]]
        assert {t["function"]["name"] for t in subagent_requests[0]["tools"]} >= {"read_file", "exec"}
        assert not {"spawn", "message"} & {t["function"]["name"] for t in subagent_requests[0]["tools"]}
        relay_prompt = upstream.requests[-1]["messages"][-1]["content"]
        assert "The workspace holds report.txt." in relay_prompt
        await manager.aclose()


async def _next_final(h):  # type: ignore[no-untyped-def]
    """The next final message on the test channel that came from a subagent's report."""
    while True:
        out = await h.everything.get()
        if out.kind == "message" and out.metadata.get("subagent"):
            return out
