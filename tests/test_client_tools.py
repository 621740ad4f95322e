"""The client's own tools on /v1/chat/completions, through the real gateway and the official openai SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_harness import GatewayProcess
from openai_schema import errors
from upstream import ScriptedUpstream

from mofaclaw.config import paths
from mofaclaw.session.sqlite import SQLiteSessionStore

StartGateway = Callable[..., GatewayProcess]

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The time now", "strict": True,
    "parameters": {"type": "object", "properties": {}, "required": [], "additionalProperties": False}}}


def _tool_names(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools", [])]


def _stored(home: Path, key: str) -> list[tuple[str, str | None, tuple[str, ...], str | None]]:
    """The conversation as stored: (role, content, call ids, answered call id) per message."""

    async def read() -> list[Any]:
        store = SQLiteSessionStore(paths.sessions_db(home))
        try:
            return await store.messages(key)
        finally:
            await store.close()

    return [(s.message.role, s.message.content, tuple(c.id for c in s.message.tool_calls), s.message.tool_call_id)
            for s in asyncio.run(read())]


def test_client_tool_call_is_handed_back_and_resumed_statelessly(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    upstream.tool_calls([("get_weather", {"city": "Paris"})], content="Let me check.")
    question = {"role": "user", "content": "Weather in Paris?"}
    raw = httpx.post(gw.url + "/chat/completions", json={
        "model": "mofaclaw", "messages": [question], "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": False,
    }, timeout=10).json()
    assert errors("CreateChatCompletionResponse", raw) == []
    choice = raw["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Let me check."
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    # the model saw the agent's tools and the client's, and the client's tool_choice
    sent = upstream.requests[0]
    assert "get_weather" in _tool_names(sent) and "list_dir" in _tool_names(sent)
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False

    upstream.reply("It is sunny in Paris.")
    answer = client.chat.completions.create(model="mofaclaw", tools=[WEATHER], messages=[
        question, choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 24C"}])
    assert answer.choices[0].message.content == "It is sunny in Paris."
    assert answer.choices[0].finish_reason == "stop"
    resumed = upstream.requests[1]["messages"]
    assert [m["role"] for m in resumed[-3:]] == ["user", "assistant", "tool"]
    assert resumed[-1] == {"role": "tool", "content": "sunny, 24C", "tool_call_id": call["id"], "name": "get_weather"}
    assert resumed[-2]["tool_calls"][0]["id"] == call["id"]
    assert "tool_choice" not in upstream.requests[1]  # the client's choice held for its first step only

    # a result no assistant message asked for is refused, as OpenAI does
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="mofaclaw", tools=[WEATHER], messages=[
            question, choice["message"], {"role": "tool", "tool_call_id": "call_nobody_made", "content": "x"}])
    assert "call_nobody_made" in bad.value.message and bad.value.body["param"] == "messages"
    assert upstream.request_count == 2


def test_streamed_parallel_client_calls_with_the_sdk_helper(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    upstream.tool_calls([("get_weather", {"city": "Oslo"}), ("get_time", {})])
    with client.chat.completions.stream(model="mofaclaw", tools=[WEATHER, TIME],
                                        messages=[{"role": "user", "content": "Weather and time?"}]) as stream:
        chunks = [event.chunk for event in stream if event.type == "chunk"]
        final = stream.get_final_completion()
    for chunk in chunks:
        assert errors("CreateChatCompletionStreamResponse", chunk.model_dump(mode="json", exclude_unset=True)) == []
    calls = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert calls[0].function.parsed_arguments == {"city": "Oslo"} and calls[1].function.parsed_arguments == {}
    # each call opens with its id and name, then its arguments come in pieces
    pieces = [tc for c in chunks for choice in c.choices for tc in choice.delta.tool_calls or ()]
    openings = [p for p in pieces if p.id]
    assert [(p.index, p.function.name) for p in openings] == [(0, "get_weather"), (1, "get_time")]
    assert len([p for p in pieces if p.index == 0 and not p.id]) > 1


def test_mixed_step_runs_the_agents_call_and_resumes_a_conversation(
        start_gateway: StartGateway, upstream: ScriptedUpstream, mofaclaw_home: Path) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    headers = {"X-Conversation-Id": "trip"}
    upstream.tool_calls([("list_dir", {"path": "."}), ("get_weather", {"city": "Rome"}), ("get_time", {})])
    first = client.chat.completions.create(model="mofaclaw", tools=[WEATHER, TIME], extra_headers=headers,
                                           messages=[{"role": "user", "content": "Plan my day"}])
    calls = first.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # the agent ran list_dir itself
    assert _stored(mofaclaw_home, "api:trip") == []  # nothing stored while the turn waits

    # a new message while the turn waits is refused, naming what it waits for
    with pytest.raises(openai.BadRequestError) as waiting:
        client.chat.completions.create(model="mofaclaw", extra_headers=headers,
                                       messages=[{"role": "user", "content": "hello?"}])
    assert calls[0].id in waiting.value.message and calls[1].id in waiting.value.message

    # only the tool messages, in any order
    upstream.reply("Sunny at noon.")
    answer = client.chat.completions.create(model="mofaclaw", tools=[WEATHER, TIME], extra_headers=headers, messages=[
        {"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"}])
    assert answer.choices[0].message.content == "Sunny at noon."
    sent = upstream.requests[1]["messages"]
    step = next(m for m in sent if m.get("tool_calls"))
    assert [c["function"]["name"] for c in step["tool_calls"]] == ["list_dir", "get_weather", "get_time"]
    assert [m.get("name") for m in sent[sent.index(step) + 1:]] == ["list_dir", "get_weather", "get_time"]
    stored = _stored(mofaclaw_home, "api:trip")
    assert [(role, ids, answered) for role, _, ids, answered in stored] == [
        ("user", (), None), ("assistant", ("call_1", "call_2", "call_3"), None), ("tool", (), "call_1"),
        ("tool", (), "call_2"), ("tool", (), "call_3"), ("assistant", (), None)]
    assert stored[0][1] == "Plan my day" and stored[-1][1] == "Sunny at noon."

    # the same answer again: nothing waits for it now
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="mofaclaw", extra_headers=headers, messages=[
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"}])
    assert len(_stored(mofaclaw_home, "api:trip")) == 6


def test_conversation_resumed_with_the_whole_history_resent_stores_it_once(
        start_gateway: StartGateway, upstream: ScriptedUpstream, mofaclaw_home: Path) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    upstream.tool_calls([("get_weather", {"city": "Lima"})])
    history: list[Any] = [{"role": "user", "content": "Weather in Lima?"}]
    first = client.chat.completions.create(model="mofaclaw", tools=[WEATHER], messages=history,
                                           extra_body={"conversation_id": "lima"})
    message = first.choices[0].message
    history += [message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "foggy"}]
    upstream.reply("Foggy.")
    answer = client.chat.completions.create(model="mofaclaw", tools=[WEATHER], messages=history,
                                            extra_body={"conversation_id": "lima"})
    assert answer.choices[0].message.content == "Foggy."
    assert [role for role, *_ in _stored(mofaclaw_home, "api:lima")] == ["user", "assistant", "tool", "assistant"]
    history += [{"role": "assistant", "content": "Foggy."}, {"role": "user", "content": "Thanks"}]
    client.chat.completions.create(model="mofaclaw", messages=history, extra_body={"conversation_id": "lima"})
    roles = [role for role, *_ in _stored(mofaclaw_home, "api:lima")]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]


def test_a_paused_turn_expires_without_corrupting_the_conversation(
        start_gateway: StartGateway, upstream: ScriptedUpstream, mofaclaw_home: Path) -> None:
    gw = start_gateway("[gateway]\nclient_tool_timeout = 0.001\n")
    client = gw.client(api_key="unused")
    headers = {"X-Conversation-Id": "late"}
    upstream.tool_calls([("get_weather", {"city": "Bern"})])
    first = client.chat.completions.create(model="mofaclaw", tools=[WEATHER], extra_headers=headers,
                                                 messages=[{"role": "user", "content": "Weather?"}])
    call = first.choices[0].message.tool_calls[0]
    with pytest.raises(openai.BadRequestError) as expired:
        client.chat.completions.create(model="mofaclaw", tools=[WEATHER], extra_headers=headers, messages=[
            {"role": "tool", "tool_call_id": call.id, "content": "rain"}])
    assert "expired" in expired.value.message and expired.value.status_code == 400
    # the conversation goes on as if the turn had never started
    answer = client.chat.completions.create(model="mofaclaw", extra_headers=headers,
                                                  messages=[{"role": "user", "content": "Never mind"}])
    assert answer.choices[0].message.content == "echo: Never mind"
    assert [(r, c) for r, c, *_ in _stored(mofaclaw_home, "api:late")] == [
        ("user", "Never mind"), ("assistant", "echo: Never mind")]
    client.close()


def test_bad_tools_are_refused_before_any_turn(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    clash = {"type": "function", "function": {"name": "list_dir", "parameters": {"type": "object"}}}
    for tools, words in (([clash], "list_dir"), ([{"type": "web_search"}], "web_search"),
                         ([WEATHER, WEATHER], "more than once")):
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="mofaclaw", tools=tools,
                                           messages=[{"role": "user", "content": "hi"}])
        assert bad.value.body["param"] == "tools" and words in bad.value.message
        assert errors("ErrorResponse", bad.value.response.json()) == []
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="mofaclaw", tools=[WEATHER], tool_choice="sometimes",
                                       messages=[{"role": "user", "content": "hi"}])
    assert bad.value.body["param"] == "tool_choice"
    assert upstream.request_count == 0


def test_the_local_model_refuses_client_tools(start_gateway: StartGateway) -> None:
    pytest.importorskip("llama_cpp")
    gw = start_gateway(upstream_url=None)
    client = gw.client(api_key="unused")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="mofaclaw", tools=[WEATHER],
                                       messages=[{"role": "user", "content": "hi"}])
    assert "cannot call tools" in bad.value.message and bad.value.body["param"] == "tools"
