"""Throughput again, with `wrk` as the load generator (Debian's wrk and bench/lua/turns.lua): a second
opinion on bench/client.py, every turn a new conversation, so the two load generators can be compared."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.lineup import side_by_side
from bench.load import Target
from bench.procstat import cpu_seconds
from bench.servers import Fleet, Server
from bench.throughput import _ratios

SCRIPT = Path(__file__).resolve().parent / "lua" / "turns.lua"
_runs = itertools.count(1)


async def run(ctx: Context) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (Debian: apt-get install wrk)", "results": [], "vs_relay": {}}
    levels, warmup, duration = ctx.pick(((16, 64), 2, 8), ((4,), 1, 1))
    with Fleet(ctx.workdir) as fleet:
        upstream, targets = side_by_side(ctx, fleet)
        runs = []
        for concurrency in levels:
            for target in targets:
                runs.append(await _wrk(target, upstream, concurrency, warmup, duration))
                print(f"  c={concurrency:<4} {target.label:<18} {runs[-1]['turns_per_s']:>8} turns/s  "
                      f"errors {runs[-1]['errors']}", flush=True)
    return {"params": {"concurrency": list(levels), "warmup_s": warmup, "window_s": duration,
                       "note": "wrk -t2 -cN, one keep-alive connection per wrk connection; a turn counts as an "
                               "error unless it is a 200 holding the upstream's echo; latency from wrk (its "
                               "coordinated-omission-free percentiles); CPU ms/turn from /proc"},
            "results": runs, "vs_relay": _ratios(runs)}


async def _wrk(target: Target, upstream: Server, concurrency: int, warmup: int, duration: int) -> dict[str, Any]:
    server = target.server
    field = server.session_field if target.conversations and server.session_field else ""
    env = {**os.environ, "MODEL": server.model, "SESSION_FIELD": field}
    url = f"http://{server.host}:{server.port}"

    async def wrk(seconds: int) -> tuple[list[str], float, float]:
        env["TAG"] = f"{target.label}-{next(_runs)}"
        cpu = cpu_seconds(server.pid), cpu_seconds(upstream.pid)
        proc = await asyncio.create_subprocess_exec(
            "wrk", f"-t{min(2, concurrency)}", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s",
            "-s", str(SCRIPT), url, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        line = next((x for x in out.decode().splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result:\n{out.decode()}")
        return line.split()[1:], cpu_seconds(server.pid) - cpu[0], cpu_seconds(upstream.pid) - cpu[1]

    warm, _, _ = await wrk(warmup)
    (requests, bad, socket_errors, p50, p99, elapsed), server_cpu, upstream_cpu = await wrk(duration)
    turns = int(requests) - int(bad)
    return {"target": target.label, "concurrency": concurrency, "window_s": float(elapsed), "turns": turns,
            "turns_per_s": round(turns / float(elapsed), 1),
            "errors": int(bad) + int(socket_errors) + int(warm[1]) + int(warm[2]),
            "latency_ms": {"p50": float(p50), "p99": float(p99)},
            "server_cpu_ms_per_turn": round(1000 * server_cpu / turns, 3) if turns else None,
            "upstream_cpu_ms_per_turn": round(1000 * upstream_cpu / turns, 3) if turns else None}
