"""Bad input to /v1/chat/completions is a 400 naming the field, before any work: hostile JSON, wrongly
typed fields, conversation ids that could not be a session key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
from gateway_harness import GatewayProcess
from openai_schema import errors
from upstream import ScriptedUpstream

StartGateway = Callable[..., GatewayProcess]
USER = [{"role": "user", "content": "hi"}]
JSON = {"Content-Type": "application/json"}


def _error(response: httpx.Response, param: str | None = None) -> dict:
    assert response.status_code == 400, response.text
    body = response.json()
    assert errors("ErrorResponse", body) == [], body
    assert body["error"]["type"] == "invalid_request_error"
    if param is not None:
        assert body["error"]["param"] == param, body
    return body["error"]


def _post(gw: GatewayProcess, body: Any, headers: dict[str, Any] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(gw.url + "/chat/completions", content=content, headers={**JSON, **(headers or {})},
                      timeout=30)


def _sessions(gw: GatewayProcess) -> str:
    result = subprocess.run([sys.executable, "-m", "mofaclaw", "sessions", "list"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "MOFACLAW_HOME": str(gw.home), "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_hostile_json_is_400_before_any_work(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    prefix = b'{"model": "mofaclaw", "messages": [{"role": "user", "content": "hi"}], '
    hostile = {
        "nested 10,000 deep": b"[" * 10_000 + b"]" * 10_000,
        "nested 100 deep in a field": prefix + b'"metadata": ' + b"[" * 100 + b"]" * 100 + b"}",
        "nested 5,000 deep in a field": prefix + b'"metadata": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}",
        "an integer of 5,000 digits": prefix + b'"seed": 1' + b"0" * 5_000 + b"}",
        "a lone surrogate": b'{"model": "mofaclaw", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
        "a lone surrogate in a key": prefix + b'"\\udfff": 1}',
        "NaN": prefix + b'"temperature": NaN}',
        "Infinity": prefix + b'"temperature": -Infinity}',
        "an overflowing float": prefix + b'"temperature": 1e999}',
        "invalid UTF-8": b'{"model": "mofaclaw", "messages": [{"role": "user", "content": "\xff"}]}',
    }
    for what, body in hostile.items():
        error = _error(_post(gw, body))
        assert "request body" in error["message"], (what, error)
    assert upstream.requests == []
    # A surrogate pair, escaped the way ensure_ascii encoders write it, is fine.
    emoji = _post(gw, b'{"model": "mofaclaw", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}')
    assert emoji.status_code == 200 and emoji.json()["choices"][0]["message"]["content"] == "echo: \U0001f600"
    assert "Traceback" not in gw.output


STRICT_CASES: list[tuple[dict[str, Any], str]] = [
    ({"stream": "yes"}, "stream"),
    ({"stream": 1}, "stream"),
    ({"temperature": "0.5"}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"top_p": "1"}, "top_p"),
    ({"max_tokens": "5"}, "max_tokens"),
    ({"max_tokens": 5.5}, "max_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"messages": {"role": "user", "content": "hi"}}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "hi", "name": 7}]}, "messages[0].name"),
    ({"stream_options": "usage"}, "stream_options"),
    ({"stream": True, "stream_options": {"include_usage": "true"}}, "stream_options.include_usage"),
    ({"conversation_id": 12}, "conversation_id"),
    ({"model": 5}, "model"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": 3}, "stop"),
    ({"n": 2}, "n"),
    ({"user": 42}, "user"),
    ({"seed": "1"}, "seed"),
    ({"metadata": {"k": 1}}, "metadata.k"),
]


def test_every_known_field_is_strictly_typed(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    for fields, param in STRICT_CASES:
        error = _error(_post(gw, {"model": "mofaclaw", "messages": USER, **fields}), param)
        assert param in error["message"], error
    assert upstream.requests == []
    # fields OpenAI added that we do not know are still accepted, as are ints for numbers
    accepted = _post(gw, {"model": "mofaclaw", "messages": USER, "temperature": 1, "reasoning_effort": "low",
                          "frobnicate": {"deep": [1, 2]}, "logprobs": False, "stop": "zzz", "n": 1})
    assert accepted.status_code == 200, accepted.text
    assert upstream.requests[-1]["temperature"] == 1


BAD_CONVERSATION_IDS = ["café", "a\nb", "tab\there", "x" * 201, "", " leading", "trailing ", "nul\x00"]


def test_bad_conversation_ids_are_400_on_both_paths_and_nothing_runs(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    for bad in BAD_CONVERSATION_IDS:
        error = _error(_post(gw, {"model": "mofaclaw", "messages": USER, "conversation_id": bad}), "conversation_id")
        assert "printable ASCII" in error["message"]
    # The header path: raw bytes, as a client (or an attacker) may send them.
    for bad in [b"caf\xc3\xa9", b"x" * 201, b"a\tb", b""]:
        error = _error(_post(gw, {"model": "mofaclaw", "messages": USER}, {"X-Conversation-Id": bad}),
                       "X-Conversation-Id")
        assert "printable ASCII" in error["message"]
    _error(_post(gw, {"model": "mofaclaw", "messages": USER, "conversation_id": "one"},
                 {"X-Conversation-Id": "two"}), "conversation_id")
    assert upstream.requests == []
    assert "No conversations yet." in _sessions(gw)

    longest = "~" * 200
    for body_id, header_id in ((longest, None), (None, "via header"), ("same", "same")):
        body = {"model": "mofaclaw", "messages": USER, **({"conversation_id": body_id} if body_id else {})}
        response = _post(gw, body, {"X-Conversation-Id": header_id} if header_id else {})
        assert response.status_code == 200, response.text
        assert response.headers["x-conversation-id"] == (body_id or header_id)
    listing = _sessions(gw)
    for key in ("api:via header", "api:same"):
        assert key in listing
    assert len(upstream.requests) == 3
