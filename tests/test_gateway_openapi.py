"""/openapi.json describes the gateway as it is: its routes, the bodies it accepts, the responses it sends."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from fastapi.routing import APIRoute
from gateway_harness import GatewayProcess
from upstream import ScriptedUpstream

from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.bus.reply import ReplyChannel
from mofaclaw.gateway.app import create_app
from mofaclaw.gateway.backend import AgentBackend
from mofaclaw.gateway.settings import GatewaySettings
from mofaclaw.session.sqlite import SQLiteSessionStore

StartGateway = Callable[..., GatewayProcess]
USER = [{"role": "user", "content": "hi"}]
KEY = "openapi-test-key-0123456789"


def _schema_errors(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def _check(doc: dict[str, Any], method: str, path: str, response: httpx.Response,
           media: str = "application/json") -> None:
    """The response conforms to what the document says this operation answers with its status."""
    documented = doc["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (method, path, response.status_code)
    schema = documented[str(response.status_code)]["content"][media]["schema"]
    assert _schema_errors(doc, schema, response.json()) == []


def _flat(routes: list[Any]) -> list[Any]:
    """The routes, with those of included routers (which newer FastAPI keeps as one entry) spelled out."""
    flat = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += _flat(included.routes) if included is not None else [route]
    return flat


def _app_routes(home: Path) -> set[tuple[str, str]]:
    app = create_app(GatewaySettings(), ReplyChannel("api", InMemoryBus()),
                     AgentBackend(SQLiteSessionStore(home / "s.db"), lambda: ()))
    routes = set()
    for route in _flat(app.routes):
        path = re.sub(r":\w+}", "}", route.path)  # {model_id:path} is {model_id} in OpenAPI
        methods = route.methods if isinstance(route, APIRoute) else getattr(route, "methods", None) or {"GET"}
        routes |= {(m.lower(), path) for m in methods if m != "HEAD"}
    return routes


def test_the_document_lists_every_route_and_agrees_with_live_responses(
        start_gateway: StartGateway, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    gw = start_gateway()
    response = httpx.get(gw.base + "/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == _app_routes(tmp_path)
    assert httpx.get(gw.base + "/docs").status_code == 404 and httpx.get(gw.base + "/redoc").status_code == 404
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "A key from gateway.api_keys."}

    _check(doc, "get", "/", httpx.get(gw.base + "/"))
    _check(doc, "get", "/health", httpx.get(gw.base + "/health"))
    _check(doc, "get", "/v1/models", httpx.get(gw.url + "/models"))
    _check(doc, "get", "/v1/models/{model_id}", httpx.get(gw.url + "/models/mofaclaw"))
    _check(doc, "get", "/v1/models/{model_id}", httpx.get(gw.url + "/models/nope"))
    url = gw.url + "/chat/completions"
    _check(doc, "post", "/v1/chat/completions", httpx.post(url, json={"model": "mofaclaw", "messages": USER}))
    _check(doc, "post", "/v1/chat/completions", httpx.post(url, json={"model": "nope", "messages": USER}))
    _check(doc, "post", "/v1/chat/completions", httpx.post(url, json={"model": "mofaclaw", "stream": "yes"}))
    _check(doc, "post", "/v1/chat/completions", httpx.post(url, content=b"{}", headers={"Content-Type": "text/plain"}))
    _check(doc, "post", "/v1/chat/completions", httpx.post(url, json={}, headers={"Origin": "http://evil.example"}))
    _check(doc, "get", "/v1/models", httpx.get(gw.url + "/models", headers={"Host": "evil.example"}))
    upstream.fail(503, "overloaded")
    _check(doc, "post", "/v1/chat/completions", httpx.post(url, json={"model": "mofaclaw", "messages": USER}))

    # A stream: every data line is one of the documented event payloads.
    event_schema = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"][
        "text/event-stream"]["x-event-data"]
    body = {"model": "mofaclaw", "messages": [{"role": "user", "content": "one two three"}], "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url, json=body) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in streamed.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and len(events) > 3
    for data in events[:-1]:
        assert _schema_errors(doc, event_schema, json.loads(data)) == [], data


def test_the_request_schema_accepts_and_refuses_what_the_server_does(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    doc = httpx.get(gw.base + "/openapi.json").json()
    schema = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    bodies = [
        {"model": "mofaclaw", "messages": USER},
        {"model": "mofaclaw", "messages": USER, "stream": True, "temperature": 1, "stop": ["x"], "extra": 1},
        {"model": "mofaclaw", "messages": USER, "conversation_id": "abc"},
        {"model": "mofaclaw", "messages": USER, "stream": "yes"},
        {"model": "mofaclaw", "messages": USER, "max_tokens": "5"},
        {"model": "mofaclaw", "messages": USER, "conversation_id": "café"},
        {"model": "mofaclaw", "messages": USER, "stop": ["a", "b", "c", "d", "e"]},
        {"model": "mofaclaw", "messages": []},
        {"model": "mofaclaw", "messages": [{"role": "wizard", "content": "x"}]},
        {"model": "mofaclaw", "messages": USER, "tools": []},
        {"model": "mofaclaw", "messages": USER, "tools": [{"type": "function", "function": {"name": "f"}}]},
    ]
    for body in bodies:
        documented_ok = _schema_errors(doc, schema, body) == []
        with httpx.stream("POST", gw.url + "/chat/completions", json=body) as response:
            response.read()
        assert documented_ok == (response.status_code == 200), (body, response.status_code)


def test_the_responses_request_schema_accepts_and_refuses_what_the_server_does(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    doc = httpx.get(gw.base + "/openapi.json").json()
    operation = doc["paths"]["/v1/responses"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"400", "404", "413", "415", "502"} <= set(operation["responses"])
    bodies = [
        {"model": "mofaclaw", "input": "hi"},
        {"model": "mofaclaw", "input": [{"role": "user", "content": "hi"}], "instructions": "be brief",
         "max_output_tokens": 50, "store": False, "metadata": {"k": "v"}},
        {"model": "mofaclaw", "input": "hi", "stream": "yes"},
        {"model": "mofaclaw", "input": "hi", "max_output_tokens": "5"},
        {"model": "mofaclaw", "input": "hi", "temperature": "hot"},
        {"model": "mofaclaw", "input": 5},
        {"model": "mofaclaw"},
    ]
    for body in bodies:
        documented_ok = _schema_errors(doc, schema, body) == []
        response = httpx.post(gw.url + "/responses", json=body, timeout=30)
        assert documented_ok == (response.status_code == 200), (body, response.status_code, response.text)


def test_the_document_needs_a_key_when_keys_are_set(start_gateway: StartGateway) -> None:
    gw = start_gateway(f'[gateway]\napi_keys = ["{KEY}"]\n')
    assert httpx.get(gw.base + "/openapi.json").status_code == 401
    doc = httpx.get(gw.base + "/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert doc["paths"]["/v1/models"]["get"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/health"]["get"]["security"] == []
    _check(doc, "get", "/v1/models", httpx.get(gw.url + "/models"))  # the 401, as documented
    client = gw.client(api_key=KEY)
    assert [m.id for m in client.models.list()] == ["mofaclaw"]
