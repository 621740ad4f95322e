"""Gateway security: bearer keys, the failure limit, the non-loopback refusal, CORS."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import httpx
import openai
import pytest
from gateway_harness import GatewayProcess

StartGateway = Callable[..., GatewayProcess]
USER = [{"role": "user", "content": "hi"}]
KEY_ONE, KEY_TWO, RIGHT = "key-one-0123456789abcdef", "key-two-0123456789abcdef", "right-0123456789abcdef"


def test_api_keys_guard_every_route_but_health(start_gateway: StartGateway) -> None:
    gw = start_gateway(f'[gateway]\napi_keys = ["{KEY_ONE}", "{KEY_TWO}"]\n')
    assert httpx.get(gw.base + "/health").status_code == 200
    for path in ("/", "/v1/models", "/v1/nowhere"):
        response = httpx.get(gw.base + path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.get(gw.url + "/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    for key in (KEY_ONE, KEY_TWO):
        client = gw.client(api_key=key)
        assert client.chat.completions.create(model="mofaclaw", messages=USER).choices[0].message.content == "echo: hi"
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key="bad", max_retries=0).models.list()
    assert KEY_ONE not in gw.output and "sk-upstream-secret" not in gw.output


def test_repeated_failures_get_429_with_retry_after(start_gateway: StartGateway) -> None:
    gw = start_gateway(f'[gateway]\napi_keys = ["{RIGHT}"]\n')
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
    gw = start_gateway(f'[gateway]\napi_keys = ["{RIGHT}"]\n', args=("--host", "0.0.0.0"))
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

    gw = start_gateway(f'[gateway]\ncors_origins = ["http://localhost:3000"]\napi_keys = ["{RIGHT}"]\n')
    preflight = httpx.options(gw.url + "/chat/completions", headers=preflight_headers)
    assert preflight.status_code == 200  # no key needed for a preflight
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-conversation-id", "x-stainless-os"):
        assert header in allowed
    evil = httpx.options(gw.url + "/chat/completions", headers={**preflight_headers, "Origin": "http://evil.example"})
    assert evil.headers.get("access-control-allow-origin") != "http://evil.example"
    actual = httpx.get(gw.url + "/models", headers={"Origin": "http://localhost:3000",
                                                       "Authorization": f"Bearer {RIGHT}"})
    assert actual.headers["access-control-allow-origin"] == "http://localhost:3000"


def _gateway_cli(home, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "mofaclaw", "gateway", "--port", "0"], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "MOFACLAW_HOME": str(home), **(env or {})})


@pytest.mark.parametrize("keys", ['["short-key"]', '[""]', f'["{RIGHT}", "also short"]', '["has a space in it!!"]'])
def test_weak_api_keys_stop_the_gateway_with_one_line(mofaclaw_home, keys: str) -> None:  # type: ignore[no-untyped-def]
    mofaclaw_home.mkdir()
    config = mofaclaw_home / "config.toml"
    config.write_text(f"[gateway]\napi_keys = {keys}\n")
    result = _gateway_cli(mofaclaw_home)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert str(config) in line and "gateway.api_keys." in line
    assert "short-key" not in line and "also short" not in line  # a key is never echoed, even a bad one


def test_api_keys_from_the_environment_must_be_a_json_list(mofaclaw_home) -> None:  # type: ignore[no-untyped-def]
    for value in ("not-json-at-all-but-long", '{"a": 1}', f'"{RIGHT}"'):
        result = _gateway_cli(mofaclaw_home, {"MOFACLAW_GATEWAY__API_KEYS": value})
        assert result.returncode == 2, result.stderr
        line = result.stderr.strip()
        assert "\n" not in line and "Traceback" not in line
        assert "MOFACLAW_GATEWAY__API_KEYS" in line and "JSON list" in line and RIGHT not in line
    status = subprocess.run([sys.executable, "-m", "mofaclaw", "status"], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "MOFACLAW_HOME": str(mofaclaw_home),
                                 "MOFACLAW_GATEWAY__API_KEYS": f'["{RIGHT}"]'})
    assert status.returncode == 0 and "1 API key(s)" in status.stdout


@pytest.mark.parametrize(("setting", "value"), [("trusted_proxies", '["not-an-address"]'),
                                                ("allowed_hosts", '["evil.example:80"]')])
def test_bad_front_door_settings_are_one_line(mofaclaw_home, setting: str, value: str) -> None:  # type: ignore[no-untyped-def]
    mofaclaw_home.mkdir()
    (mofaclaw_home / "config.toml").write_text(f"[gateway]\n{setting} = {value}\n")
    result = _gateway_cli(mofaclaw_home)
    assert result.returncode == 2 and f"gateway.{setting}.0" in result.stderr
    assert "Traceback" not in result.stderr
