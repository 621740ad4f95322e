"""The Responses API of the real gateway, spoken to with the official openai SDK and raw HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from gateway_harness import GatewayProcess
from openai_schema import errors
from upstream import ScriptedUpstream

StartGateway = Callable[..., GatewayProcess]

WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}


def _event_errors(event: dict[str, Any]) -> list[str]:
    """An event against its own schema (one of ResponseStreamEvent's), for errors that say what is wrong."""
    name = {"response.output_text.delta": "ResponseTextDeltaEvent", "response.output_text.done":
            "ResponseTextDoneEvent", "error": "ResponseErrorEvent"}.get(event["type"])
    if name is None:
        name = "Response" + "".join(w.capitalize() for w in event["type"][len("response."):].replace(".", "_")
                                    .split("_")) + "Event"
    return errors(name, event) + errors("ResponseStreamEvent", event)


def _contents(request: dict[str, Any]) -> list[str]:
    return [str(m.get("content")) for m in request["messages"] if m["role"] != "system"]


def _sse(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]


def test_text_response_is_stored_listed_and_deleted(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    upstream.reply("Hello Ann, nice to meet you")
    raw = httpx.post(gw.url + "/responses", json={
        "model": "mofaclaw", "input": "Hi, I am Ann", "instructions": "Be brief", "metadata": {"topic": "intro"},
        "temperature": 0.5}, timeout=10).json()
    assert errors("Response", raw) == []
    assert raw["status"] == "completed" and raw["id"].startswith("resp_") and raw["metadata"] == {"topic": "intro"}
    [message] = raw["output"]
    assert message["type"] == "message" and message["content"][0]["text"] == "Hello Ann, nice to meet you"
    sent = upstream.requests[0]
    assert "Be brief" in sent["messages"][0]["content"] and sent["temperature"] == 0.5
    words = sum(len(str(m["content"]).split()) for m in sent["messages"])
    assert raw["usage"]["input_tokens"] == words and raw["usage"]["output_tokens"] == 6
    assert raw["usage"]["total_tokens"] == words + 6

    assert "POST /v1/responses" in httpx.get(gw.base + "/").json()["endpoints"]
    fetched = client.responses.retrieve(raw["id"])
    assert fetched.output_text == "Hello Ann, nice to meet you" and fetched.id == raw["id"]
    items = httpx.get(f"{gw.url}/responses/{raw['id']}/input_items").json()
    assert errors("ResponseItemList", items) == []
    assert [(i["role"], i["content"][0]["text"]) for i in items["data"]] == [("user", "Hi, I am Ann")]
    assert client.responses.input_items.list(raw["id"]).data[0].type == "message"

    client.responses.delete(raw["id"])
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve(raw["id"])
    assert errors("ErrorResponse", missing.value.response.json()) == []
    for call in (lambda: client.responses.delete(raw["id"]), lambda: client.responses.input_items.list(raw["id"]),
                 lambda: client.responses.create(model="mofaclaw", input="x", previous_response_id=raw["id"])):
        with pytest.raises(openai.NotFoundError):
            call()


def test_previous_response_id_chains_and_branches(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    first = client.responses.create(model="mofaclaw", input="My name is Ann")
    second = client.responses.create(model="mofaclaw", input="Call me Bo", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text == "echo: Call me Bo"
    third = client.responses.create(model="mofaclaw", input="What is my name?", previous_response_id=second.id)
    assert _contents(upstream.requests[2]) == ["My name is Ann", "echo: My name is Ann", "Call me Bo",
                                               "echo: Call me Bo", "What is my name?"]
    # a branch from the first response does not see the second
    client.responses.create(model="mofaclaw", input="Again?", previous_response_id=first.id)
    assert _contents(upstream.requests[3]) == ["My name is Ann", "echo: My name is Ann", "Again?"]
    assert third.status == "completed"

    unstored = client.responses.create(model="mofaclaw", input="secret", store=False)
    assert unstored.output_text == "echo: secret"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError) as bad:
        client.responses.create(model="mofaclaw", input="x", previous_response_id=unstored.id)
    assert bad.value.body["param"] == "previous_response_id"
    assert upstream.request_count == 5


def test_function_call_and_its_output_resume_the_turn(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    upstream.tool_calls([("list_dir", {"path": "."}), ("get_weather", {"city": "Rome"})])
    raw = httpx.post(gw.url + "/responses", json={"model": "mofaclaw", "input": "Weather?", "tools": [WEATHER]},
                     timeout=10).json()
    assert errors("Response", raw) == []
    assert raw["status"] == "completed"  # as OpenAI: a response ending in a function call is complete
    [call] = raw["output"]  # the agent ran list_dir itself; only the client's call is handed back
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Rome"}
    assert [t["function"]["name"] for t in upstream.requests[0]["tools"]][-1] == "get_weather"

    upstream.reply("Sunny in Rome.")
    answer = client.responses.create(model="mofaclaw", previous_response_id=raw["id"], tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}])
    assert answer.output_text == "Sunny in Rome."
    sent = upstream.requests[1]["messages"]
    step = next(m for m in sent if m.get("tool_calls"))
    assert [c["function"]["name"] for c in step["tool_calls"]] == ["list_dir", "get_weather"]
    assert [(m.get("name"), m["content"]) for m in sent[sent.index(step) + 1:]][-1] == ("get_weather", "sunny")
    assert len([m for m in sent if m["role"] == "tool"]) == 2  # the agent's result kept, nothing twice

    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="mofaclaw", previous_response_id=answer.id, input=[
            {"type": "function_call_output", "call_id": "call_nobody_made", "output": "x"}])
    assert "call_nobody_made" in bad.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="mofaclaw", input="x", tools=[{"type": "web_search"}])
    assert bad.value.body["param"] == "tools"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="mofaclaw", input="x", store="yes")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "store"


def test_streamed_events_in_order(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    upstream.reply("One two three four")
    with httpx.stream("POST", gw.url + "/responses", json={"model": "mofaclaw", "input": "Count", "stream": True},
                      timeout=10) as response:
        events = _sse(response)
    for event in events:
        assert _event_errors(event) == [], event["type"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas == 4  # token by token, as the model spoke
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "One two three four" and final["usage"]["output_tokens"] == 4
    assert client.responses.retrieve(final["id"]).output_text == "One two three four"

    upstream.tool_calls([("get_weather", {"city": "Oslo, Norway"})], content="Checking.")
    with client.responses.stream(model="mofaclaw", input="Weather?", tools=[WEATHER]) as stream:
        kinds = [event.type for event in stream]
        done = stream.get_final_response()
    assert kinds.count("response.function_call_arguments.delta") > 1
    assert kinds.index("response.output_text.done") < kinds.index("response.function_call_arguments.done")
    assert [item.type for item in done.output] == ["message", "function_call"]
    assert done.output_text == "Checking." and json.loads(done.output[1].arguments) == {"city": "Oslo, Norway"}


def test_a_failed_upstream_fails_the_response(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    upstream.fail(400, "bad prompt")
    with httpx.stream("POST", gw.url + "/responses", json={"model": "mofaclaw", "input": "x", "stream": True},
                      timeout=10) as response:
        events = _sse(response)
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1]["response"]
    assert _event_errors(events[-1]) == [] and failed["status"] == "failed"
    assert "bad prompt" in failed["error"]["message"]
    assert httpx.get(f"{gw.url}/responses/{failed['id']}").json()["status"] == "failed"
    upstream.fail(400, "bad prompt")
    plain = httpx.post(gw.url + "/responses", json={"model": "mofaclaw", "input": "x"}, timeout=10)
    assert plain.status_code == 502 and errors("ErrorResponse", plain.json()) == []


def test_a_pending_function_call_must_be_answered(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    upstream.tool_calls([("get_weather", {"city": "Rome"})])
    paused = client.responses.create(model="mofaclaw", input="Weather?", tools=[WEATHER])
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="mofaclaw", input="Never mind", previous_response_id=paused.id)
    assert paused.output[0].call_id in bad.value.message and bad.value.body["param"] == "input"
    assert upstream.request_count == 1


async def test_auth_applies_and_a_disconnect_cancels_the_streamed_turn(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway('[gateway]\napi_keys = ["sk-gw-0123456789abcdef"]\n')
    anonymous = openai.AsyncOpenAI(base_url=gw.url, api_key="wrong")
    with pytest.raises(openai.AuthenticationError):
        await anonymous.responses.create(model="mofaclaw", input="hi")
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="sk-gw-0123456789abcdef")
    upstream.hang(after_chunks=1)
    stream = await client.responses.create(model="mofaclaw", input="Tell me a long story", stream=True)
    async for event in stream:
        if event.type == "response.output_text.delta":
            break
    await stream.close()
    await upstream.wait_for_disconnects(1)  # the turn was cancelled, and with it the upstream request
    await client.close()
    await anonymous.close()
