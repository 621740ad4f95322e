"""The embedded local model behind the real gateway, with no config at all: offline, no key, no server."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from gateway_harness import GatewayProcess

pytest.importorskip("llama_cpp")

StartGateway = Callable[..., GatewayProcess]


async def test_local_model_streams_through_the_gateway(start_gateway: StartGateway) -> None:
    gw = start_gateway(upstream_url=None)  # no config file content: the default model is local/smollm2
    assert "model local/smollm2" in gw.output
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused")
    stream = await client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "What is the capital of France?"}],
        stream=True, stream_options={"include_usage": True}, max_tokens=12, temperature=0)
    pieces, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    text = "".join(pieces)
    assert text.strip() and len([p for p in pieces if p]) > 1  # streamed token by token
    assert usage is not None and 0 < usage.completion_tokens <= 12 and usage.prompt_tokens > 100
    assert finish in ("stop", "length")

    # a client that goes away mid-answer frees the model for the next one
    stream = await client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "Write a very long story about a dragon."}],
        stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    answer = await client.chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": "Say hi."}], max_tokens=5, temperature=0)
    assert answer.choices[0].message.content and answer.usage is not None
    assert answer.usage.completion_tokens <= 5
    assert "client disconnected; turn cancelled" in gw.output
    await client.close()
