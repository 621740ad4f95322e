"""The real `mofaclaw gateway` command, spoken to with the official openai SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from gateway_harness import GatewayProcess
from openai_schema import errors
from upstream import ScriptedUpstream

StartGateway = Callable[..., GatewayProcess]


def _sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def test_routes_and_model_listing(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    root = httpx.get(gw.base + "/").json()
    assert root["name"] == "mofaclaw" and "POST /v1/chat/completions" in root["endpoints"]
    assert httpx.get(gw.base + "/health").json() == {"status": "ok"}
    client = gw.client(api_key="unused")
    models = client.models.list()
    assert [m.id for m in models.data] == ["mofaclaw"] and models.data[0].object == "model"
    assert client.models.retrieve("mofaclaw").owned_by == "mofaclaw"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def test_non_streaming_completion_with_real_usage(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    upstream.reply("The answer is 42")
    client = gw.client(api_key="unused")
    completion = client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "What is the answer?"}])
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.message.content == "The answer is 42" and choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    # usage is the upstream's own count for the request the agent really sent (system prompt included)
    sent_words = sum(len(str(m["content"]).split()) for m in upstream.requests[0]["messages"])
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == sent_words and completion.usage.completion_tokens == 4
    assert completion.usage.total_tokens == sent_words + 4
    raw = httpx.post(gw.url + "/chat/completions",
                     json={"model": "mofaclaw", "messages": [{"role": "user", "content": "hi"}]}).json()
    assert errors("CreateChatCompletionResponse", raw) == []
    assert raw["choices"][0]["logprobs"] is None and raw["choices"][0]["message"]["refusal"] is None


def test_sampling_options_reach_the_upstream(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "hi"}], temperature=0.2, top_p=0.5,
        max_completion_tokens=77, stop=["END"], presence_penalty=0.1, user="someone", seed=3)
    sent = upstream.requests[0]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"]) == (0.2, 0.5, 77, ["END"])
    upstream.reply("cut off here", finish_reason="length")
    completion = client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "x"}],
                                                max_tokens=3)
    assert completion.choices[0].finish_reason == "length"


def test_streaming_is_incremental_and_well_formed(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    upstream.token_delay = 0.15
    upstream.reply("one two three four five six")
    client = gw.client(api_key="unused")
    arrivals: list[tuple[float, str]] = []
    stream = client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "count"}], stream=True)
    ids = set()
    finish = None
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert "".join(t for _, t in arrivals) == "one two three four five six"
    assert len(ids) == 1 and finish == "stop"
    # deltas arrived as the model produced them, not all at the end: the first word came while the
    # upstream was still producing the rest (it takes 6 token delays in all)
    assert len(arrivals) == 6
    assert arrivals[-1][0] - arrivals[0][0] >= 4 * 0.15


def test_stream_wire_format_and_include_usage(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    upstream.reply("hello world")
    body = {"model": "mofaclaw", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", gw.url + "/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in response.headers
        events = _sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        assert errors("CreateChatCompletionStreamResponse", chunk) == []
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("usage" in c for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    assert len({c["id"] for c in chunks}) == 1


async def test_async_sdk_streaming(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    upstream.reply("async works")
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused")
    stream = await client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "async works" and usage is not None and usage.completion_tokens == 2
    completion = await client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "echo: x"
    await client.close()


def test_conversation_keeps_history_and_survives_restart(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    first = client.chat.completions.with_raw_response.create(
        model="mofaclaw", messages=[{"role": "user", "content": "my name is Ada"}],
        extra_body={"conversation_id": "laptop"})
    assert first.headers["x-conversation-id"] == "laptop"
    # the client resends the whole history, as chat UIs do: only the new message is input
    client.chat.completions.create(
        model="mofaclaw", extra_headers={"X-Conversation-Id": "laptop"},
        messages=[{"role": "user", "content": "my name is Ada"},
                  {"role": "assistant", "content": "echo: my name is Ada"},
                  {"role": "user", "content": "what is my name?"}])
    sent = [m["content"] for m in upstream.requests[1]["messages"][1:]]
    assert sent == ["my name is Ada", "echo: my name is Ada", "what is my name?"]
    assert gw.stop() == 0

    gw2 = start_gateway()
    client2 = gw2.client(api_key="unused")
    client2.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "and again?"}],
                                    extra_body={"conversation_id": "laptop"})
    sent = [m["content"] for m in upstream.requests[2]["messages"][1:]]
    assert sent[:4] == ["my name is Ada", "echo: my name is Ada", "what is my name?", "echo: what is my name?"]
    assert sent[-1] == "and again?"


def test_stateless_requests_use_the_clients_messages(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    client.chat.completions.create(model="mofaclaw", messages=[
        {"role": "system", "content": "Always answer like a pirate."},
        {"role": "user", "content": [{"type": "text", "text": "I live in Lyon"}]},
        {"role": "assistant", "content": "Arr, Lyon"},
        {"role": "user", "content": "where do I live?"},
    ])
    sent = upstream.requests[0]["messages"]
    assert sent[0]["role"] == "system" and "Always answer like a pirate." in sent[0]["content"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "I live in Lyon"), ("assistant", "Arr, Lyon"), ("user", "where do I live?")]
    # nothing was persisted: a second stateless request sees only its own messages
    client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "fresh"}])
    assert [m["content"] for m in upstream.requests[1]["messages"][1:]] == ["fresh"]


async def test_one_conversation_is_serialized_others_run_in_parallel(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    upstream.hang(then=None)
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused")

    def ask(text: str, conversation: str):  # type: ignore[no-untyped-def]
        return asyncio.create_task(client.chat.completions.create(
            model="mofaclaw", messages=[{"role": "user", "content": text}],
            extra_body={"conversation_id": conversation}))

    first = ask("first", "a")
    await upstream.wait_for_requests(1)
    second = ask("second", "a")
    other = ask("other", "b")
    done = await other  # b is not stuck behind a's hanging turn
    assert done.choices[0].message.content == "echo: other"
    assert upstream.request_count == 2  # a's second request is waiting for its turn, not sent
    upstream.release()
    assert (await first).choices[0].message.content == "echo: first"
    assert (await second).choices[0].message.content == "echo: second"
    third = [m["content"] for m in upstream.requests[2]["messages"][1:]]
    assert third == ["first", "echo: first", "second"]
    await client.close()


async def test_disconnect_cancels_the_upstream_and_commits_nothing(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    upstream.hang(after_chunks=1)
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused")
    stream = await client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "long story"}], stream=True,
        extra_body={"conversation_id": "gone"})
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    await upstream.wait_for_disconnects(1)
    # the conversation holds nothing of the cancelled turn
    upstream.reply("fresh start")
    await client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "hello?"}],
                                        extra_body={"conversation_id": "gone"})
    assert [m["content"] for m in upstream.requests[-1]["messages"][1:]] == ["hello?"]

    # a non-streaming client that goes away cancels its turn too
    upstream.hang()
    task = asyncio.create_task(client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "x"}]))
    await upstream.wait_for_requests(3)
    task.cancel()
    await upstream.wait_for_disconnects(2)
    await client.close()


def test_request_id_is_echoed_or_generated(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    body = {"model": "mofaclaw", "messages": [{"role": "user", "content": "hi"}]}
    echoed = httpx.post(gw.url + "/chat/completions", json=body, headers={"X-Request-Id": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    generated = httpx.post(gw.url + "/chat/completions", json=body)
    assert len(generated.headers["x-request-id"]) >= 16
    assert "trace-123" in gw.output
    # An id that is echoed and logged cannot run to kilobytes or carry what a log line should not:
    # ours replaces it (an escape character never gets that far: the HTTP parser refuses it, 400).
    for bad in (b"t" * 201, b"a\tb", b"caf\xe9"):
        replaced = httpx.post(gw.url + "/chat/completions", json=body, headers={"X-Request-Id": bad})
        assert replaced.status_code == 200
        assert replaced.headers["x-request-id"] != bad.decode("latin-1")
        assert len(replaced.headers["x-request-id"]) >= 16
        assert bad.decode("latin-1") not in gw.output
    escaped = httpx.post(gw.url + "/chat/completions", json=body, headers={"X-Request-Id": b"a\x1b[31mred"})
    assert escaped.status_code == 400 and "\x1b[31m" not in gw.output


def test_keepalive_comments_during_silence(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway("[gateway]\nkeepalive_interval = 0.2\n")
    upstream.hang()
    body = {"model": "mofaclaw", "messages": [{"role": "user", "content": "slow tool"}], "stream": True}
    comments = 0
    with httpx.stream("POST", gw.url + "/chat/completions", json=body, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith(": keep-alive"):
                comments += 1
                if comments == 2:
                    upstream.release()
            if line == "data: [DONE]":
                break
    assert comments >= 2


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signals_stop_the_gateway_cleanly_with_streams_open(
        start_gateway: StartGateway, upstream: ScriptedUpstream, sig: str) -> None:
    import signal
    import threading

    gw = start_gateway()
    upstream.hang(after_chunks=1)
    body = {"model": "mofaclaw", "messages": [{"role": "user", "content": "x"}], "stream": True}
    opened = threading.Event()

    def hold_stream() -> None:
        try:
            with httpx.stream("POST", gw.url + "/chat/completions", json=body, timeout=20) as response:
                for _ in response.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass

    client = threading.Thread(target=hold_stream, daemon=True)
    client.start()
    assert opened.wait(10)
    assert gw.proc is not None
    gw.proc.send_signal(getattr(signal, sig))
    assert gw.proc.wait(15) == 0
    client.join(10)
    assert "gateway stopped" in gw.output and "Traceback" not in gw.output


def test_killed_mid_turn_keeps_earlier_turns_and_no_partial_one(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused", max_retries=0)
    for text in ("one", "two"):
        client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": text}],
                                       extra_body={"conversation_id": "crash"})
    upstream.tool_calls([("list_dir", {"path": "."})])
    upstream.hang(after_chunks=2)  # the second step of the turn streams a little, then hangs
    body = {"model": "mofaclaw", "messages": [{"role": "user", "content": "three"}], "stream": True,
            "conversation_id": "crash"}
    with httpx.stream("POST", gw.url + "/chat/completions", json=body, timeout=20) as response:
        for line in response.iter_lines():
            if '"content":"echo' in line:
                break  # the turn is mid-way: a tool ran, the answer is streaming
        assert gw.proc is not None
        gw.proc.kill()  # SIGKILL: no chance to clean up
        gw.proc.wait(10)
    gw2 = start_gateway()
    client2 = gw2.client(api_key="unused")
    client2.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "four"}],
                                    extra_body={"conversation_id": "crash"})
    sent = [(m["role"], m["content"]) for m in upstream.requests[-1]["messages"][1:]]
    assert sent == [("user", "one"), ("assistant", "echo: one"), ("user", "two"), ("assistant", "echo: two"),
                    ("user", "four")]
