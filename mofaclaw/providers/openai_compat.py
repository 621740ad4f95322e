"""Any OpenAI-compatible endpoint through the official openai SDK, as a stream of typed events."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from mofaclaw.errors import ProviderError, ProviderTimeout
from mofaclaw.providers.base import (
    ChatRequest,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    UsageReport,
    wire_message,
)
from mofaclaw.providers.settings import ProviderSettings
from mofaclaw.types import ToolCall, ToolSpec, Usage

log = logging.getLogger(__name__)


class OpenAICompatProvider:
    """One reused AsyncOpenAI client. The SDK retries connection errors, 408, 409, 429 and 5xx with
    exponential back-off and jitter, honouring Retry-After; it only retries before the response
    starts, so nothing already passed on is ever repeated."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._client: openai.AsyncOpenAI | None = None
        # The wire form of the last tool list seen, as JSON: the agent sends the same tuple every call.
        self._tools_cache: tuple[Sequence[ToolSpec], bytes] | None = None

    def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            s = self.settings
            if not s.api_key and s.needs_key:
                raise ProviderError(
                    f"no API key for provider '{s.name}': set {s.key_env or 'an API key'} "
                    f"or providers.{s.name}.api_key in the config"
                )
            timeout = openai.Timeout(s.timeout, connect=min(s.timeout, 10.0))
            self._client = openai.AsyncOpenAI(
                api_key=s.api_key or "not-needed",
                base_url=s.api_base,
                timeout=timeout,
                max_retries=s.max_retries,
                default_headers=dict(s.extra_headers) or None,
                # The SDK's aiohttp transport: httpcore's pool inspects every pooled connection's socket
                # on each request, which made the HTTP client ~half of a turn's CPU (bench/README.md).
                # HTTP(S)_PROXY / NO_PROXY still apply: the SDK's httpx2 client picks the proxy per URL
                # from the environment (trust_env) and hands it to the aiohttp transport it mounts.
                http_client=openai.DefaultAioHttpClient(timeout=timeout, trust_env=True),
            )
        return self._client

    def _wire_tools(self, tools: Sequence[ToolSpec]) -> bytes:
        if self._tools_cache is None or self._tools_cache[0] is not tools:
            wire = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                      "parameters": t.parameters}} for t in tools]
            self._tools_cache = (tools, _dumps(wire) if wire else b"")
        return self._tools_cache[1]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client = self._get_client()
        body = _request_body(request, self._wire_tools(request.tools))
        try:
            # client.post rather than chat.completions.create: create() first walks the whole body
            # through the SDK's TypedDict transform, which costs more than the HTTP call itself for a
            # prompt with tool schemas (measured 5.5 ms -> 2.4 ms per call). And chunks come as plain
            # JSON (cast_to=object) instead of a pydantic model built per chunk. The body goes as JSON
            # bytes with the tool schemas (most of it) encoded once. Retries, errors and the SSE
            # framing are the SDK's either way.
            response = await client.post("/chat/completions", content=body, cast_to=object,
                                         stream=True, stream_cls=openai.AsyncStream[object])
            async with response:
                async for event in _events(response):
                    yield event
        except openai.APITimeoutError as exc:
            if (failure := _connection_failure(exc)) is not None:
                raise self._unreachable(failure) from None
            raise ProviderTimeout(
                f"provider '{self.settings.name}' did not answer within {self.settings.timeout:g}s"
            ) from None
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"provider '{self.settings.name}' returned HTTP {exc.status_code}: {_upstream_message(exc)}",
                status=exc.status_code,
            ) from None
        except openai.APIConnectionError as exc:
            raise self._unreachable(exc.__cause__ or exc) from None
        except openai.APIError as exc:
            raise ProviderError(f"provider '{self.settings.name}' failed: {exc.message}") from None

    def _unreachable(self, cause: BaseException) -> ProviderError:
        return ProviderError(f"cannot reach provider '{self.settings.name}' at {self.settings.api_base}: {cause}")


def _connection_failure(exc: BaseException) -> BaseException | None:
    """The aiohttp error under a "timeout" that was none: the transport maps every aiohttp connection
    error, a refused connection too, to ConnectTimeout, and a user must not wait out a timeout message
    for a provider that is down."""
    import aiohttp  # loaded with the transport already

    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError):
            return None if isinstance(cause, TimeoutError) else cause
        cause = cause.__cause__
    return None


def _dumps(value: Any) -> bytes:
    # What the SDK itself would send (its openapi_dumps): compact, UTF-8, no NaN.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _request_body(request: ChatRequest, tools: bytes) -> bytes:
    """The request's JSON; `tools` is the tool list already encoded, spliced in as it is."""
    opts = request.options
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": [wire_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if tools:
        if request.tool_choice is not None:
            kwargs["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = request.parallel_tool_calls
    if opts.temperature is not None:
        kwargs["temperature"] = opts.temperature
    if opts.top_p is not None:
        kwargs["top_p"] = opts.top_p
    if opts.max_tokens is not None:
        kwargs["max_tokens"] = opts.max_tokens
    if opts.stop:
        kwargs["stop"] = list(opts.stop)
    body = _dumps(kwargs)
    return b'{"tools":' + tools + b"," + body[1:] if tools else body


async def _events(response: Any) -> AsyncIterator[StreamEvent]:
    """Chunks (plain JSON objects) -> events; tool-call fragments are assembled by index and released
    at the end. Upstreams differ in what they leave out or send as null, hence the `or` defaults."""
    fragments: dict[int, dict[str, str]] = {}
    finish_reason: str | None = None
    async for chunk in response:
        if not isinstance(chunk, dict):
            continue
        if usage := chunk.get("usage"):
            yield UsageReport(Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0))
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if content := delta.get("content"):
                yield TextDelta(content)
            for frag in delta.get("tool_calls") or ():
                slot = fragments.setdefault(frag.get("index", 0), {"id": "", "name": "", "arguments": ""})
                slot["id"] = frag.get("id") or slot["id"]
                function = frag.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            finish_reason = choice.get("finish_reason") or finish_reason
    for index in sorted(fragments):
        slot = fragments[index]
        yield ToolCallReady(ToolCall(slot["id"] or f"call_{index}", slot["name"], slot["arguments"]))
    yield Finish(finish_reason or ("tool_calls" if fragments else "stop"))


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return exc.message
