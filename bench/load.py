"""Load patterns over the raw client: one checked turn, sequential rounds, closed-loop workers."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.client import Connection, Result
from bench.procstat import cpu_seconds
from bench.servers import Server
from bench.stats import summary_ms

_runs = itertools.count(1)


@dataclass(frozen=True)
class Target:
    """What a benchmark compares: a server, and whether its turns name a (new) conversation each."""

    label: str
    server: Server
    conversations: bool = True

    def request(self, connection: Connection, text: str, key: str, stream: bool = False) -> bytes:
        session = key if self.conversations and self.server.session_field else None
        return connection.request_bytes("POST", "/v1/chat/completions", self.server.body(text, session, stream))


async def turn(connection: Connection, target: Target, text: str, key: str, stream: bool = False,
               timeout: float = 60.0) -> Result:
    """One request whose answer must be the upstream's echo of `text` (and, streamed, end with [DONE])."""
    result = await connection.send(target.request(connection, text, key, stream), stream, timeout)
    if result.ok and result.content != f"echo: {text}":
        result.error = f"unexpected answer {result.content[:80]!r}"
    elif result.ok and stream and not result.done:
        result.error = "stream ended without [DONE]"
    return result


def words(n: int, tag: str) -> str:
    """A message of n words, unique per tag (answers are checked word for word)."""
    return " ".join([f"w{tag}", *(f"word{i}" for i in range(n - 1))])


async def sequential(targets: Sequence[Target], requests: int, warmup: int, stream: bool = False,
                     message_words: int = 4, block: int = 25) -> dict[str, dict[str, Any]]:
    """Requests one at a time on a keep-alive connection per target, like a client's back-to-back turns,
    in blocks of `block` per target in turn, so drifting machine load hits every target alike."""
    run = next(_runs)
    connections = {t.label: Connection(t.server.host, t.server.port) for t in targets}
    samples: dict[str, list[Result]] = {t.label: [] for t in targets}

    async def one(target: Target, i: int) -> Result:
        key = f"seq{run}-{i}"
        return await turn(connections[target.label], target, words(message_words, key), key, stream)

    try:
        for target in targets:
            for i in range(warmup):
                await one(target, -1 - i)
        for start in range(0, requests, block):
            for target in targets:
                for i in range(start, min(start + block, requests)):
                    samples[target.label].append(await one(target, i))
    finally:
        for connection in connections.values():
            await connection.close()
    out = {}
    for label, results in samples.items():
        good = [r for r in results if r.ok]
        entry: dict[str, Any] = {"requests": len(results), "errors": len(results) - len(good),
                                 "latency_ms": summary_ms([r.latency for r in good])}
        if stream:
            entry["ttft_ms"] = summary_ms([r.ttft for r in good if r.ttft is not None])
        entry["error_samples"] = sorted({r.error for r in results if r.error})[:3]
        out[label] = entry
    return out


@dataclass
class LoadResult:
    target: str
    concurrency: int
    duration: float
    completed: int = 0  # turns that finished inside the measured window
    errors: int = 0  # failed turns at any time, warm-up included
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0  # CPU seconds the server used in the window
    upstream_cpu: float = 0.0

    def report(self) -> dict[str, Any]:
        turns = self.completed / self.duration
        return {
            "target": self.target, "concurrency": self.concurrency, "window_s": self.duration,
            "turns": self.completed, "turns_per_s": round(turns, 1), "errors": self.errors,
            "error_samples": self.error_samples[:3], "latency_ms": summary_ms(self.latencies),
            "server_cpu_s": round(self.server_cpu, 2),
            "server_cpu_ms_per_turn": round(1000 * self.server_cpu / self.completed, 3) if self.completed else None,
            "upstream_cpu_ms_per_turn": round(1000 * self.upstream_cpu / self.completed, 3) if self.completed else None,
        }


async def closed_loop(target: Target, upstream: Server, concurrency: int, duration: float, warmup: float,
                      stream: bool = False, timeout: float = 60.0) -> LoadResult:
    """`concurrency` workers, each on its own keep-alive connection, sending a new turn (a new
    conversation) as soon as the last one answered; measured after `warmup` for `duration` seconds."""
    run = next(_runs)
    result = LoadResult(target.label, concurrency, duration)
    connections = [Connection(target.server.host, target.server.port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    begin = time.perf_counter()
    window = (begin + warmup, begin + warmup + duration)

    async def worker(index: int, connection: Connection) -> None:
        for n in itertools.count():
            if time.perf_counter() >= window[1]:
                return
            key = f"tp{run}-{index}-{n}"
            outcome = await turn(connection, target, words(4, key), key, stream, timeout)
            if not outcome.ok:
                result.errors += 1
                if len(result.error_samples) < 3 and outcome.error not in result.error_samples:
                    result.error_samples.append(outcome.error)
            elif window[0] <= outcome.finished <= window[1]:
                result.completed += 1
                if outcome.started >= window[0]:
                    result.latencies.append(outcome.latency)

    async def meter() -> None:
        await asyncio.sleep(warmup)
        cpu = cpu_seconds(target.server.pid), cpu_seconds(upstream.pid)
        await asyncio.sleep(duration)
        result.server_cpu = cpu_seconds(target.server.pid) - cpu[0]
        result.upstream_cpu = cpu_seconds(upstream.pid) - cpu[1]

    try:
        await asyncio.gather(meter(), *(worker(i, c) for i, c in enumerate(connections)))
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return result
