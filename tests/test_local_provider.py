"""The embedded local model: real generation with the bundled SmolLM2-135M, no mocks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from mofaclaw.errors import ProviderError
from mofaclaw.providers.base import ChatRequest, Finish, StreamEvent, TextDelta, ToolCallReady, UsageReport
from mofaclaw.providers.local import (
    EXTRA_HINT,
    LocalProvider,
    _tool_calls,
    bundled_model_path,
    local_model_available,
)
from mofaclaw.providers.settings import ProviderSettings
from mofaclaw.types import ChatMessage, GenerationOptions, ToolSpec

ESSAY = "Write a long essay about the history of the sea, with many chapters."


def request(prompt: str, max_tokens: int | None = 16, stop: tuple[str, ...] = ()) -> ChatRequest:
    # Greedy decoding keeps the tiny model's answers repeatable.
    opts = GenerationOptions(temperature=0.0, max_tokens=max_tokens, stop=stop)
    return ChatRequest("smollm2", [ChatMessage("user", prompt)], options=opts)


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def usage_of(events: list[StreamEvent]) -> tuple[int, int]:
    (report,) = [e for e in events if isinstance(e, UsageReport)]
    return report.usage.prompt_tokens, report.usage.completion_tokens


@pytest.fixture
def provider() -> LocalProvider:
    return LocalProvider(ProviderSettings(name="local", kind="local"))


def test_bundled_model_is_found_without_importing_llama_cpp() -> None:
    path = bundled_model_path()
    assert path is not None and path.suffix == ".gguf" and path.is_file()
    code = ("import sys, mofaclaw.providers.local as m; "
            "print(m.local_model_available(), 'llama_cpp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
    assert local_model_available()


async def test_streams_deltas_with_usage_from_the_tokenizer(provider: LocalProvider) -> None:
    events = await collect(provider.stream(request("Name three colors.", max_tokens=24)))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    prompt_tokens, completion_tokens = usage_of(events)
    assert len(deltas) > 1 and text_of(events).strip()
    assert prompt_tokens > 0 and len(deltas) <= completion_tokens <= 24
    assert isinstance(events[-1], Finish) and events[-1].reason in ("stop", "length")


async def test_prompt_tokens_grow_by_the_tokenizer_count_of_the_added_text(provider: LocalProvider) -> None:
    from llama_cpp import Llama

    short, extra = "Hello", " and goodbye, my dear friend" * 5
    tokenizer = Llama(model_path=str(bundled_model_path()), vocab_only=True, verbose=False)
    expected = len(tokenizer.tokenize((short + extra).encode(), add_bos=False)) - len(
        tokenizer.tokenize(short.encode(), add_bos=False))
    base, _ = usage_of(await collect(provider.stream(request(short, max_tokens=1))))
    longer, _ = usage_of(await collect(provider.stream(request(short + extra, max_tokens=1))))
    assert longer - base == expected > 0


async def test_max_tokens_ends_with_length_after_exactly_that_many_tokens(provider: LocalProvider) -> None:
    events = await collect(provider.stream(request(ESSAY, max_tokens=5)))
    assert usage_of(events)[1] == 5
    assert events[-1] == Finish("length")


async def test_stop_string_ends_the_answer_and_is_not_shown(provider: LocalProvider) -> None:
    events = await collect(provider.stream(request(ESSAY, max_tokens=40, stop=(" ",))))
    assert " " not in text_of(events)
    assert events[-1] == Finish("stop")


async def test_closing_the_stream_stops_generation_and_the_model_stays_usable(
    provider: LocalProvider,
) -> None:
    stream = provider.stream(request(ESSAY, max_tokens=None))  # unbounded: runs until the context is full
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    # The close waits for the worker, so it only returns in time if generation really stopped.
    await asyncio.wait_for(stream.aclose(), timeout=5)
    events = await collect(provider.stream(request("Hi", max_tokens=3)))
    assert usage_of(events)[1] == 3 and events[-1] == Finish("length")


async def test_cancelling_the_consuming_task_stops_generation(provider: LocalProvider) -> None:
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for event in provider.stream(request(ESSAY, max_tokens=None)):
            if isinstance(event, TextDelta):
                first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    events = await collect(provider.stream(request("Hi", max_tokens=3)))
    assert usage_of(events)[1] == 3


async def test_event_loop_keeps_running_while_the_model_generates(provider: LocalProvider) -> None:
    ticks = 0
    ticks_at_deltas: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    tick_task = asyncio.create_task(ticker())
    try:
        async for event in provider.stream(request(ESSAY, max_tokens=32)):
            if isinstance(event, TextDelta):
                ticks_at_deltas.append(ticks)
    finally:
        tick_task.cancel()
    assert ticks_at_deltas[-1] > ticks_at_deltas[0]


async def test_concurrent_turns_queue_for_the_shared_model(provider: LocalProvider) -> None:
    other = LocalProvider(ProviderSettings(name="local", kind="local"))
    results = await asyncio.gather(
        collect(provider.stream(request("Hi", max_tokens=4))),
        collect(other.stream(request(ESSAY, max_tokens=4))),
    )
    assert [usage_of(events)[1] for events in results] == [4, 4]


async def test_tools_are_ignored_unless_the_model_is_tool_capable(provider: LocalProvider) -> None:
    tool = ToolSpec("read_file", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}})
    plain = request("Read notes.txt", max_tokens=8)
    with_tools = ChatRequest(plain.model, plain.messages, tools=[tool], options=plain.options)
    events = await collect(provider.stream(with_tools))
    assert not any(isinstance(e, ToolCallReady) for e in events)
    assert usage_of(events)[0] == usage_of(await collect(provider.stream(plain)))[0]


def test_tool_calls_are_read_from_tool_call_tags_best_effort() -> None:
    text = ('Sure. <tool_call>\n{"name": "read_file", "arguments": {"path": "a.txt"}}\n</tool_call>'
            '<tool_call>not json</tool_call><tool_call>{"name": "ls", "parameters": {}}" (no closing tag)')
    first, second = _tool_calls(text)
    assert first.name == "read_file" and first.parsed_arguments() == {"path": "a.txt"}
    assert second.name == "ls" and second.parsed_arguments() == {}


async def test_missing_model_file_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    provider = LocalProvider(ProviderSettings(name="local", kind="local", model_path=str(missing)))
    with pytest.raises(ProviderError, match="does not exist") as raised:
        await collect(provider.stream(request("Hi")))
    assert str(missing) in str(raised.value) and "\n" not in str(raised.value)


async def test_unknown_model_id_is_one_clear_error(provider: LocalProvider) -> None:
    bad = ChatRequest("no-such-model", [ChatMessage("user", "Hi")])
    with pytest.raises(ProviderError, match="unknown local model 'no-such-model'"):
        await collect(provider.stream(bad))
    assert "pip install 'mofaclaw[local]'" in EXTRA_HINT
