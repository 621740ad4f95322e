"""Every gateway error is OpenAI-shaped, with the right status, and loses nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable

import httpx
import openai
import pytest
from gateway_harness import GatewayProcess
from openai_schema import errors
from upstream import ScriptedUpstream

StartGateway = Callable[..., GatewayProcess]
USER = [{"role": "user", "content": "hi"}]


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert errors("ErrorResponse", body) == []
    return body["error"]


BAD_REQUESTS = [
    ({"model": "mofaclaw"}, "messages"),
    ({"model": "mofaclaw", "messages": []}, "messages"),
    ({"model": "mofaclaw", "messages": "hello"}, "messages"),
    ({"messages": USER}, "model"),
    ({"model": "mofaclaw", "messages": USER, "temperature": "hot"}, "temperature"),
    ({"model": "mofaclaw", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "mofaclaw", "messages": [{"role": "assistant", "content": "only me"}]}, "messages"),
    ({"model": "mofaclaw", "messages": USER, "tools": [{"type": "web_search"}]}, "tools"),  # function tools only
    ({"model": "mofaclaw", "messages": USER, "tools": [{"type": "function", "function": {"name": "exec"}}]},
     "tools"),  # the agent's own tool name
    ([1, 2], None),
]


def test_bad_requests_are_400_naming_the_param(start_gateway: StartGateway) -> None:
    gw = start_gateway()  # one gateway for every case: starting one per case would dominate the run
    for body, param in BAD_REQUESTS:
        error = _error(httpx.post(gw.url + "/chat/completions", json=body), 400)
        assert error["type"] == "invalid_request_error", body
        assert error["param"] == param, (body, error)


def test_malformed_json_unknown_model_route_and_method(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    error = _error(httpx.post(gw.url + "/chat/completions", content=b"{not json",
                              headers={"content-type": "application/json"}), 400)
    assert "not valid JSON" in error["message"]
    error = _error(httpx.post(gw.url + "/chat/completions", json={"model": "gpt-5", "messages": USER}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    _error(httpx.get(gw.url + "/nowhere"), 404)
    _error(httpx.get(gw.url + "/chat/completions"), 405)
    client = gw.client(api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-5", messages=USER)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"


def test_oversized_body_is_413(start_gateway: StartGateway) -> None:
    gw = start_gateway("[gateway]\nmax_body_bytes = 2000\n")
    big = {"model": "mofaclaw", "messages": [{"role": "user", "content": "x" * 5000}]}
    error = _error(httpx.post(gw.url + "/chat/completions", json=big), 413)
    assert error["code"] == "request_too_large"

    # chunked, with no Content-Length: refused once the bytes read pass the limit
    def chunks():  # type: ignore[no-untyped-def]
        yield json.dumps(big).encode()

    _error(httpx.post(gw.url + "/chat/completions", content=chunks(), headers={"Content-Type": "application/json"}),
           413)


def test_provider_failure_is_502_and_the_conversation_is_intact(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused", max_retries=0)
    client.chat.completions.create(model="mofaclaw", messages=USER, extra_body={"conversation_id": "c"})
    upstream.fail(503, "overloaded")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "again"}],
                                       extra_body={"conversation_id": "c"})
    assert caught.value.status_code == 502
    assert "503" in caught.value.message and "overloaded" in caught.value.message
    client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "third"}],
                                   extra_body={"conversation_id": "c"})
    history = [m["content"] for m in upstream.requests[-1]["messages"][1:]]
    assert history == ["hi", "echo: hi", "third"]  # no trace of the failed turn


def test_provider_failure_during_a_stream_is_sent_in_band(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    upstream.fail(500, "upstream broke")
    body = {"model": "mofaclaw", "messages": USER, "stream": True}
    with httpx.stream("POST", gw.url + "/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"} and "upstream broke" in error["message"]


def test_turn_timeout_is_504_and_cancels_the_turn(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway("[gateway]\nrequest_timeout = 1\n")
    upstream.hang()
    error = _error(httpx.post(gw.url + "/chat/completions", json={"model": "mofaclaw", "messages": USER},
                              timeout=10), 504)
    assert error["code"] == "timeout" and "request_timeout" in error["message"]
    upstream.wait_until_sync(lambda: upstream.disconnects >= 1)


def test_a_stream_past_its_time_ends_with_a_timeout_in_band_and_cancels_the_turn(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    """Headers went out long ago, so the timeout is told inside the stream: keep-alive comments while the
    agent waits, then an OpenAI-shaped error and [DONE] (Chat Completions), or response.failed (Responses);
    the upstream call is cancelled either way."""
    gw = start_gateway("[gateway]\nrequest_timeout = 1.5\nkeepalive_interval = 0.3\n")
    upstream.hang()
    body = {"model": "mofaclaw", "messages": USER, "stream": True}
    with httpx.stream("POST", gw.url + "/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    assert ": keep-alive" in lines
    events = [line[6:] for line in lines if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "timeout" and "request_timeout" in error["message"]
    upstream.wait_until_sync(lambda: upstream.disconnects >= 1)

    upstream.hang()
    with httpx.stream("POST", gw.url + "/responses", json={"model": "mofaclaw", "input": "x", "stream": True},
                      timeout=10) as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    assert ": keep-alive" in lines
    kinds = [json.loads(line[6:])["type"] for line in lines if line.startswith("data: ")]
    assert kinds == ["response.created", "response.in_progress", "response.failed"]
    failed = json.loads([line for line in lines if line.startswith("data: ")][-1][6:])["response"]
    assert failed["status"] == "failed" and "request_timeout" in failed["error"]["message"]
    upstream.wait_until_sync(lambda: upstream.disconnects >= 2)


def test_missing_provider_key_fails_each_turn_with_one_clear_line(start_gateway: StartGateway) -> None:
    gw = start_gateway('[agents.defaults]\nmodel = "openai/gpt-4.1-mini"\n', upstream_url=None)
    assert "OPENAI_API_KEY" in gw.output  # the start-up warning
    error = _error(httpx.post(gw.url + "/chat/completions", json={"model": "mofaclaw", "messages": USER}), 502)
    assert "OPENAI_API_KEY" in error["message"]


def test_port_in_use_is_one_clear_line(mofaclaw_home) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "mofaclaw", "gateway", "--port", str(port)],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
