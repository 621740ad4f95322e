"""The scripted upstream speaks the OpenAI wire format as the official SDK expects it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import openai
import pytest
from upstream import Reply, ScriptedUpstream, ToolCalls

USER = [{"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]


def client(upstream: ScriptedUpstream, **options: float) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.base_url, api_key="sk-test", max_retries=0, **options)


def async_client(upstream: ScriptedUpstream, **options: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=upstream.base_url, api_key="sk-test", max_retries=0, **options)


def test_default_reply_echoes_the_last_user_message_with_usage(upstream: ScriptedUpstream) -> None:
    messages = [{"role": "system", "content": "be brief"}, *USER]
    with client(upstream) as sdk:
        completion = sdk.chat.completions.create(model="m1", messages=messages)
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "m1"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (4, 3, 7)
    assert upstream.requests[-1]["messages"] == messages
    assert upstream.request_headers[-1]["authorization"] == "Bearer sk-test"


def test_script_plays_in_order_then_falls_back_to_echo(upstream: ScriptedUpstream) -> None:
    upstream.reply("first answer")
    upstream.reply("cut short", finish_reason="length")
    upstream.enqueue(lambda request: Reply(f"you asked {request['model']}"))
    with client(upstream) as sdk:
        answers = [sdk.chat.completions.create(model="m2", messages=USER).choices[0] for _ in range(4)]
        models = sdk.models.list()
    assert [(a.message.content, a.finish_reason) for a in answers] == [
        ("first answer", "stop"),
        ("cut short", "length"),
        ("you asked m2", "stop"),
        ("echo: hello there", "stop"),
    ]
    assert upstream.request_count == 4
    assert [m.id for m in models] == ["scripted"]


async def test_stream_arrives_word_by_word_with_the_token_delay(upstream: ScriptedUpstream) -> None:
    upstream.token_delay = 0.02
    upstream.reply("one two three four")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with async_client(upstream) as sdk:
        stream = await sdk.chat.completions.create(
            model="m", messages=USER, stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert loop.time() - started >= 4 * 0.02  # the server paused before each word
    words = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert words == ["one ", "two ", "three ", "four"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (2, 4)


async def test_stream_without_include_usage_has_no_usage_chunk(upstream: ScriptedUpstream) -> None:
    async with async_client(upstream) as sdk:
        chunks = [c async for c in await sdk.chat.completions.create(model="m", messages=USER, stream=True)]
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello there"


async def test_streamed_tool_call_arguments_come_in_fragments_the_sdk_assembles(
    upstream: ScriptedUpstream,
) -> None:
    calls: list[tuple[str, dict[str, object] | str]] = [
        ("read_file", {"path": "a.txt"}),
        ("exec", '{"cmd": "ls"}'),  # arguments as a raw string
    ]
    upstream.tool_calls(calls, content="Let me look.")
    upstream.tool_calls(calls)
    async with async_client(upstream) as sdk:
        async with sdk.chat.completions.stream(model="m", messages=USER, tools=TOOLS) as stream:
            final = await stream.get_final_completion()
        raw = await sdk.chat.completions.create(model="m", messages=USER, tools=TOOLS, stream=True)
        fragments: dict[int, list[str]] = {}
        async for chunk in raw:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                if call.function and call.function.arguments:
                    fragments.setdefault(call.index, []).append(call.function.arguments)
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content == "Let me look."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []] == [
        ("call_1", "read_file", {"path": "a.txt"}), ("call_2", "exec", {"cmd": "ls"})]
    assert all(len(parts) > 1 for parts in fragments.values())
    assembled = {i: json.loads("".join(parts)) for i, parts in fragments.items()}
    assert assembled == {0: {"path": "a.txt"}, 1: {"cmd": "ls"}}


def test_non_streamed_tool_calls(upstream: ScriptedUpstream) -> None:
    upstream.enqueue(ToolCalls([("read_file", {"path": "b.txt"})]))
    with client(upstream) as sdk:
        choice = sdk.chat.completions.create(model="m", messages=USER, tools=TOOLS).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert (call.id, call.function.name) == ("call_1", "read_file")
    assert json.loads(call.function.arguments) == {"path": "b.txt"}


def test_failure_surfaces_as_api_status_error(upstream: ScriptedUpstream) -> None:
    upstream.fail(503, "overloaded", retry_after_ms=10)
    with client(upstream) as sdk, pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model="m", messages=USER)
    assert raised.value.status_code == 503
    assert raised.value.response.headers["retry-after-ms"] == "10"
    assert raised.value.body == {"message": "overloaded", "type": "server_error", "param": None, "code": None}


def test_sdk_retries_a_rate_limit_and_gets_the_next_step(upstream: ScriptedUpstream) -> None:
    upstream.fail(429, retry_after_ms=10)
    upstream.reply("after the retry")
    with openai.OpenAI(base_url=upstream.base_url, api_key="k", max_retries=1) as sdk:
        completion = sdk.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "after the retry"
    assert [h["x-stainless-retry-count"] for h in upstream.request_headers] == ["0", "1"]


async def test_hang_until_the_client_times_out_records_a_disconnect(upstream: ScriptedUpstream) -> None:
    upstream.hang()
    async with async_client(upstream, timeout=0.2) as sdk:
        with pytest.raises(openai.APITimeoutError):
            await sdk.chat.completions.create(model="m", messages=USER)
    await upstream.wait_for_disconnects(1)
    assert upstream.request_count == 1


async def test_hang_mid_stream_then_cancel(upstream: ScriptedUpstream) -> None:
    upstream.hang(after_chunks=1, then=Reply("never said"))
    async with async_client(upstream) as sdk:
        stream = await sdk.chat.completions.create(model="m", messages=USER, stream=True)
        seen = [await anext(aiter(stream)) for _ in range(2)]
        await stream.close()
    assert [c.choices[0].delta.content for c in seen] == ["", "never "]
    await upstream.wait_for_disconnects(1)


async def test_leaving_a_slow_stream_records_a_disconnect(upstream: ScriptedUpstream) -> None:
    upstream.token_delay = 0.05
    upstream.reply("many words " * 50)
    async with async_client(upstream) as sdk:
        stream = await sdk.chat.completions.create(model="m", messages=USER, stream=True)
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                break
        await stream.close()
    await upstream.wait_for_disconnects(1)


async def test_release_lets_a_hanging_request_finish(upstream: ScriptedUpstream) -> None:
    upstream.hang(then=Reply("at last"))
    async with async_client(upstream) as sdk:
        pending = asyncio.create_task(sdk.chat.completions.create(model="m", messages=USER))
        await upstream.wait_for_requests(1)
        assert not pending.done()
        upstream.release()
        completion = await pending
    assert completion.choices[0].message.content == "at last"
    assert upstream.disconnects == 0


def test_sync_waits_and_release_from_another_thread(upstream: ScriptedUpstream) -> None:
    upstream.hang()
    results: list[str | None] = []

    def ask() -> None:
        with client(upstream) as sdk:
            results.append(sdk.chat.completions.create(model="m", messages=USER).choices[0].message.content)

    worker = threading.Thread(target=ask)
    worker.start()
    upstream.wait_until_sync(lambda: upstream.request_count >= 1)
    upstream.release()
    worker.join(5)
    assert results == ["echo: hello there"]
    with pytest.raises(TimeoutError):
        upstream.wait_until_sync(lambda: upstream.request_count >= 2, timeout=0.01)


def test_standalone_process_serves_on_the_printed_port() -> None:
    script = Path(__file__).with_name("upstream.py")
    with subprocess.Popen([sys.executable, str(script), "--port", "0", "--token-delay", "0.001"],
                          stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().split()[-1]
            with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as sdk:
                chunks = list(sdk.chat.completions.create(model="m", messages=USER, stream=True))
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello there"
        finally:
            process.terminate()
    assert process.returncode is not None
