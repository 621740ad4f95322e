"""Gateway security: bearer keys, the failure limit, the non-loopback refusal, CORS."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx
import openai
import pytest
from gateway_harness import GatewayProcess

StartGateway = Callable[..., GatewayProcess]
USER = [{"role": "user", "content": "hi"}]


def test_api_keys_guard_every_route_but_health(start_gateway: StartGateway) -> None:
    gw = start_gateway('[gateway]\napi_keys = ["key-one", "key-two"]\n')
    assert httpx.get(gw.base + "/health").status_code == 200
    for path in ("/", "/v1/models", "/v1/nowhere"):
        response = httpx.get(gw.base + path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.get(gw.url + "/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    for key in ("key-one", "key-two"):
        client = openai.OpenAI(base_url=gw.url, api_key=key)
        assert client.chat.completions.create(model="mofaclaw", messages=USER).choices[0].message.content == "echo: hi"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.url, api_key="bad", max_retries=0).models.list()
    assert "key-one" not in gw.output and "sk-upstream-secret" not in gw.output


def test_repeated_failures_get_429_with_retry_after(start_gateway: StartGateway) -> None:
    gw = start_gateway('[gateway]\napi_keys = ["right"]\n')
    statuses = [httpx.get(gw.url + "/models", headers={"Authorization": "Bearer wrong"}).status_code
                for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    limited = httpx.get(gw.url + "/models", headers={"Authorization": "Bearer wrong"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_error"


def test_non_loopback_bind_without_keys_is_refused(mofaclaw_home) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run([sys.executable, "-m", "mofaclaw", "gateway", "--host", "0.0.0.0", "--port", "0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without gateway.api_keys" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_loopback_bind_with_keys_or_explicit_opt_out_starts(start_gateway: StartGateway) -> None:
    gw = start_gateway('[gateway]\napi_keys = ["k"]\n', args=("--host", "0.0.0.0"))
    assert httpx.get(gw.base.replace("0.0.0.0", "127.0.0.1") + "/health").status_code == 200
    gw.stop()
    gw2 = start_gateway("[gateway]\nallow_unauthenticated = true\n", args=("--host", "0.0.0.0"))
    assert httpx.get(gw2.base.replace("0.0.0.0", "127.0.0.1") + "/health").status_code == 200


def test_cors_is_off_by_default_and_allows_configured_origins(start_gateway: StartGateway) -> None:
    preflight_headers = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-conversation-id, x-stainless-os",
    }
    gw = start_gateway()
    plain = httpx.get(gw.url + "/models", headers={"Origin": "http://localhost:3000"})
    assert "access-control-allow-origin" not in plain.headers
    gw.stop()

    gw = start_gateway('[gateway]\ncors_origins = ["http://localhost:3000"]\napi_keys = ["k"]\n')
    preflight = httpx.options(gw.url + "/chat/completions", headers=preflight_headers)
    assert preflight.status_code == 200  # no key needed for a preflight
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-conversation-id", "x-stainless-os"):
        assert header in allowed
    evil = httpx.options(gw.url + "/chat/completions", headers={**preflight_headers, "Origin": "http://evil.example"})
    assert evil.headers.get("access-control-allow-origin") != "http://evil.example"
    actual = httpx.get(gw.url + "/models", headers={"Origin": "http://localhost:3000", "Authorization": "Bearer k"})
    assert actual.headers["access-control-allow-origin"] == "http://localhost:3000"
