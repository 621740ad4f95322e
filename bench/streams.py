"""Held streams: N streams open at once, each lasting seconds; all must complete; the server's memory."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.client import Connection, Result
from bench.context import Context
from bench.load import Target, turn, words
from bench.procstat import RSSSampler, cpu_seconds, hwm_mb, rss_mb
from bench.servers import Fleet, Server, start_gateway, start_relay, start_upstream
from bench.stats import summary_ms

TOKEN_DELAY = 0.25  # a 20-word message echoes as 21 tokens: a stream of about 5.3 s


async def run(ctx: Context) -> dict[str, Any]:
    sizes, delay, length = ctx.pick(((100, 500, 1000), TOKEN_DELAY, 20), ((10,), 0.05, 5))
    runs = []
    with Fleet(ctx.workdir) as fleet:
        upstream = fleet.add(start_upstream(ctx.workdir, delay))
        for n in sizes:
            for name in ("direct", "relay", "gateway"):
                # A fresh server per run: its peak RSS (VmHWM) then belongs to this run alone.
                server = upstream if name == "direct" else fleet.add(_start(name, ctx, upstream))
                runs.append(await _held(Target(name, server), n, length))
                if server is not upstream:
                    fleet.stop(server)
                print(f"  n={n:<5} {name:<8} ok {runs[-1]['completed']}/{n}  errors {runs[-1]['errors']}  "
                      f"peak RSS {runs[-1]['peak_rss_mb']} MB", flush=True)
    return {"params": {"streams": list(sizes), "token_delay_s": delay, "tokens_per_stream": length + 1,
                       "note": "all streams sent at once, one connection each; memory of the server under test "
                               "(direct: the upstream itself, a control for the client and upstream)"},
            "results": runs}


def _start(name: str, ctx: Context, upstream: Server) -> Server:
    if name == "relay":
        return start_relay(ctx.workdir, upstream)
    return start_gateway(ctx.workdir, upstream, variant=ctx.variant)


async def _held(target: Target, n: int, length: int) -> dict[str, Any]:
    pid = target.server.pid
    warm = Connection(target.server.host, target.server.port)
    for i in range(3):  # lazy parts (the SDK client, imports on first use) belong to the idle baseline
        await turn(warm, target, words(3, f"warm{i}"), f"warm{n}-{i}", stream=True)
    await warm.close()
    await asyncio.sleep(0.5)
    idle = rss_mb(pid)
    connections = [Connection(target.server.host, target.server.port) for _ in range(n)]
    await asyncio.gather(*(c.open() for c in connections))
    cpu, began = cpu_seconds(pid), time.perf_counter()
    async with RSSSampler(pid) as sampler:
        results: list[Result] = await asyncio.gather(*(
            turn(c, target, words(length, f"s{n}-{i}"), f"held{n}-{i}", stream=True, timeout=120)
            for i, c in enumerate(connections)))
    wall, cpu = time.perf_counter() - began, cpu_seconds(pid) - cpu
    await asyncio.gather(*(c.close() for c in connections))
    good = [r for r in results if r.ok]
    return {
        "target": target.label, "streams": n, "completed": len(good), "errors": n - len(good),
        "error_samples": sorted({r.error for r in results if r.error})[:3], "wall_s": round(wall, 2),
        "stream_ms": summary_ms([r.latency for r in good]),
        "ttft_ms": summary_ms([r.ttft for r in good if r.ttft is not None]),
        "idle_rss_mb": idle, "peak_rss_mb": sampler.peak_mb, "vm_hwm_mb": hwm_mb(pid),
        "kb_per_stream": round((sampler.peak_kb - idle * 1024) / n, 1), "server_cpu_s": round(cpu, 2),
    }
