"""The agent runtime against the scripted upstream: streaming, tools, limits, retries, cancellation,
ordering, atomic commits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent_harness import running_agent
from upstream import ScriptedUpstream

from mofaclaw.agent.tools.base import ToolContext


class RecordingTool:
    """A tool of our own protocol that records its calls and can wait for company."""

    name = "note"
    description = "Record a note."
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def __init__(self, barrier: asyncio.Barrier | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.barrier = barrier

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        self.calls.append((args["text"], ctx.session_key))
        if self.barrier is not None:
            await self.barrier.wait()  # passes only when every call of the step runs at once
        return f"noted {args['text']}"


async def test_streamed_answer_reaches_the_bus_and_is_committed(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.reply("Hello there, friend")
    async with running_agent(upstream.base_url, tmp_path) as h:
        msg = await h.send("hi")
        out = await h.collect(msg.request_id)
        deltas = [o.content for o in out if o.kind == "delta"]
        assert len(deltas) >= 3 and "".join(deltas) == "Hello there, friend"
        final = out[-1]
        assert final.kind == "message" and final.content == "Hello there, friend"
        # usage is the provider's count, not ours
        assert final.usage is not None and final.usage.completion_tokens == 3
        assert final.usage.prompt_tokens > 0
        history = await h.store.history("test:c1", 10)
        assert [(m.role, m.content) for m in history] == [("user", "hi"), ("assistant", "Hello there, friend")]
        assert upstream.requests[0]["stream_options"] == {"include_usage": True}


async def test_multi_step_tool_loop_feeds_results_back(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    tool = RecordingTool()
    upstream.tool_calls([("note", {"text": "milk"})])
    upstream.tool_calls([("note", {"text": "eggs"})])
    upstream.reply("Both noted.")
    async with running_agent(upstream.base_url, tmp_path, [tool]) as h:
        msg = await h.send("remember milk and eggs")
        out = await h.collect(msg.request_id)
        assert out[-1].content == "Both noted."
        assert [o.content for o in out if o.kind == "progress"] == ["↳ note milk", "↳ note eggs"]
        assert tool.calls == [("milk", "test:c1"), ("eggs", "test:c1")]
        third = upstream.requests[2]["messages"]
        assert third[-1] == {"role": "tool", "content": "noted eggs", "tool_call_id": "call_2", "name": "note"}
        assert third[-2]["tool_calls"][0]["function"] == {"name": "note", "arguments": '{"text": "eggs"}'}
        stored = await h.store.history("test:c1", 50)
        assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
        # the usage of the turn is the sum over its three LLM calls
        assert out[-1].usage is not None
        assert out[-1].usage.prompt_tokens == sum(_words(r) for r in upstream.requests)


def _words(request: dict[str, Any]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in request["messages"])


async def test_calls_of_one_step_run_concurrently(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    tool = RecordingTool(asyncio.Barrier(3))
    upstream.tool_calls([("note", {"text": "a"}), ("note", {"text": "b"}), ("note", {"text": "c"})])
    upstream.reply("done")
    async with running_agent(upstream.base_url, tmp_path, [tool]) as h:
        msg = await h.send("three at once")
        out = await h.collect(msg.request_id, timeout=5)
        assert out[-1].content == "done"
        results = [m for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
        assert [r["content"] for r in results] == ["noted a", "noted b", "noted c"]


async def test_iteration_limit_ends_the_turn_with_a_clear_message(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    tool = RecordingTool()
    for i in range(5):
        upstream.tool_calls([("note", {"text": str(i)})])
    async with running_agent(upstream.base_url, tmp_path, [tool], max_iterations=3) as h:
        msg = await h.send("loop forever")
        final = (await h.collect(msg.request_id))[-1]
        assert final.kind == "message"
        assert "3 tool steps" in final.content and "max_tool_iterations" in final.content
        assert final.finish_reason == "length"
        assert len(upstream.requests) == 3


async def test_invalid_tool_arguments_come_back_as_an_error_result(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.tool_calls([("note", {"wrong": 1}), ("missing_tool", {})])
    upstream.reply("sorry")
    async with running_agent(upstream.base_url, tmp_path, [RecordingTool()]) as h:
        msg = await h.send("x")
        assert (await h.collect(msg.request_id))[-1].content == "sorry"
        results = [m["content"] for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
        assert results[0].startswith("Error: invalid arguments for note")
        assert results[1].startswith("Error: unknown tool 'missing_tool'")


async def test_retry_then_success(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.fail(503, retry_after_ms=10)
    upstream.fail(429, retry_after_ms=10)
    upstream.reply("made it")
    async with running_agent(upstream.base_url, tmp_path, max_retries=2) as h:
        msg = await h.send("hi")
        assert (await h.collect(msg.request_id))[-1].content == "made it"
        assert upstream.request_count == 3


async def test_retries_exhausted_is_a_clean_error_and_commits_nothing(
        upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.reply("first answer")
    for _ in range(3):
        upstream.fail(502, "bad gateway upstream", retry_after_ms=10)
    async with running_agent(upstream.base_url, tmp_path, max_retries=2) as h:
        first = await h.send("one")
        await h.collect(first.request_id)
        before = await h.store.history("test:c1", 50)
        msg = await h.send("two")
        out = await h.collect(msg.request_id)
        assert out[-1].kind == "error" and out[-1].status == 502 and out[-1].error_code == "provider_error"
        assert "HTTP 502" in out[-1].content and "bad gateway upstream" in out[-1].content
        assert await h.store.history("test:c1", 50) == before
        assert upstream.request_count == 4


async def test_client_errors_are_not_retried(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.fail(400, "model does not exist")
    async with running_agent(upstream.base_url, tmp_path, max_retries=3) as h:
        msg = await h.send("hi")
        out = await h.collect(msg.request_id)
        assert out[-1].kind == "error" and out[-1].status == 400
        assert upstream.request_count == 1


async def test_hanging_provider_times_out(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.hang()
    async with running_agent(upstream.base_url, tmp_path, timeout=0.5, max_retries=0) as h:
        msg = await h.send("hi")
        out = await h.collect(msg.request_id)
        assert out[-1].kind == "error" and out[-1].error_code == "provider_timeout"
        assert "did not answer within 0.5s" in out[-1].content
        assert await h.store.history("test:c1", 10) == []


async def test_cancel_mid_stream_stops_upstream_and_commits_nothing(
        upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.hang(after_chunks=2)
    async with running_agent(upstream.base_url, tmp_path) as h:
        msg = await h.send("tell me a long story")
        first = await asyncio.wait_for(h.by_request[msg.request_id].get(), 5)
        assert first.kind == "delta"
        await h.bus.publish_inbound(msg.__class__("test", "u1", "c1", "", request_id=msg.request_id, kind="cancel"))
        await upstream.wait_for_disconnects(1)
        assert await h.store.history("test:c1", 10) == []
        # the session is free again: the next turn runs
        upstream.reply("ok")
        nxt = await h.send("again")
        assert (await h.collect(nxt.request_id))[-1].content == "ok"


async def test_turns_of_one_session_run_in_order(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.token_delay = 0.01
    async with running_agent(upstream.base_url, tmp_path) as h:
        first = await h.send("first question")
        second = await h.send("second question")
        await h.collect(first.request_id)
        await h.collect(second.request_id)
        # the second turn saw the first one's complete answer
        seen = [m["content"] for m in upstream.requests[1]["messages"]]
        assert seen[-3:] == ["first question", "echo: first question", "second question"]


async def test_sessions_run_in_parallel(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.hang()  # the first session's turn hangs...
    async with running_agent(upstream.base_url, tmp_path) as h:
        slow = await h.send("slow", chat_id="a")
        await upstream.wait_for_requests(1)
        fast = await h.send("fast", chat_id="b")
        out = await h.collect(fast.request_id)  # ...while another session's turn completes
        assert out[-1].content == "echo: fast"
        upstream.release()
        assert (await h.collect(slow.request_id))[-1].kind == "message"


async def test_stateless_turn_uses_given_history_and_persists_nothing(
        upstream: ScriptedUpstream, tmp_path: Path) -> None:
    from mofaclaw.types import ChatMessage

    async with running_agent(upstream.base_url, tmp_path) as h:
        history = [ChatMessage("user", "my name is Ada"), ChatMessage("assistant", "Hi Ada")]
        msg = await h.send("what is my name?", history=history, instructions="Answer in French.")
        assert (await h.collect(msg.request_id))[-1].kind == "message"
        sent = upstream.requests[0]["messages"]
        assert [m["content"] for m in sent[1:]] == ["my name is Ada", "Hi Ada", "what is my name?"]
        assert "Answer in French." in sent[0]["content"]
        assert await h.store.list_sessions() == []


async def test_new_command_archives_the_session(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    async with running_agent(upstream.base_url, tmp_path) as h:
        await h.collect((await h.send("hello")).request_id)
        upstream.reply('{"history_entry": "[2026-11-25 10:00] Said hello.", "memory_update": "# Memory\\n- greets"}')
        out = await h.collect((await h.send("/new")).request_id)
        assert out[-1].content.startswith("Started a new conversation")
        assert await h.store.history("test:c1", 10) == []
        keys = [s.key for s in await h.store.list_sessions()]
        assert len(keys) == 1 and keys[0].startswith("test:c1@")
        await h.agent.drain()
        assert "Said hello." in (h.workspace / "memory" / "HISTORY.md").read_text()
        help_out = await h.collect((await h.send("/help")).request_id)
        assert "/new" in help_out[-1].content
