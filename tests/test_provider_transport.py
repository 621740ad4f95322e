"""The provider's HTTP transport (aiohttp under the openai SDK) as a user's network sees it: proxies from
the environment, as with the SDK's default httpx transport, and a provider that is down."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from agent_harness import running_agent
from gateway_harness import GatewayProcess
from http_proxy import RecordingProxy
from upstream import ScriptedUpstream

StartGateway = Callable[..., GatewayProcess]
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _proxy_env(**values: str) -> dict[str, str]:
    """Every proxy variable in both spellings: its value in `values` (lower-case names), else empty. An
    empty lower-case one would cancel its upper-case twin (urllib), so both are always set alike."""
    return {name: values.get(lower, "") for lower in _PROXY_VARIABLES for name in (lower, lower.upper())}


def test_turns_reach_the_provider_through_http_proxy(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    upstream.reply("via the proxy")
    with RecordingProxy() as proxy:
        gw = start_gateway(env=_proxy_env(http_proxy=proxy.url))
        completion = gw.client(api_key="unused").chat.completions.create(
            model="mofaclaw", messages=[{"role": "user", "content": "hi"}])
        assert completion.choices[0].message.content == "via the proxy"
        assert proxy.requests == [f"POST {upstream.base_url}/chat/completions"]
        assert upstream.request_count == 1


def test_no_proxy_naming_the_provider_host_goes_direct(start_gateway: StartGateway,
                                                        upstream: ScriptedUpstream) -> None:
    upstream.reply("straight there")
    with RecordingProxy() as proxy:
        gw = start_gateway(env=_proxy_env(http_proxy=proxy.url, no_proxy=f"localhost,{upstream.host}"))
        completion = gw.client(api_key="unused").chat.completions.create(
            model="mofaclaw", messages=[{"role": "user", "content": "hi"}])
        assert completion.choices[0].message.content == "straight there"
        assert proxy.requests == [] and upstream.request_count == 1


async def test_a_provider_that_is_down_is_reported_unreachable_not_slow(tmp_path: Path) -> None:
    # aiohttp's refused connection reaches the SDK as a connect timeout; the user must be told the truth
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with running_agent(f"http://127.0.0.1:{port}/v1", tmp_path, timeout=60, max_retries=0) as h:
        msg = await h.send("hi")
        out = await h.collect(msg.request_id)
        assert out[-1].kind == "error" and out[-1].error_code == "provider_error"
        assert f"cannot reach provider 'scripted' at http://127.0.0.1:{port}/v1" in out[-1].content
        assert await h.store.history("test:c1", 10) == []
