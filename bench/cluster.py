"""Replicas: throughput of one, two and three gateway processes on Redis Streams and PostgreSQL, against
the single-process default (in-memory bus, SQLite) in the same run, on the same scripted upstream.

Every turn names a new conversation (so it is stored), the workers are spread round-robin over the
replicas, and the CPU each part burns per turn is read from /proc: the gateways, redis-server and the
PostgreSQL backends, so the report can say where the time goes and what more cores would buy."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.load import LoadResult, Target, closed_loop
from bench.procstat import cpu_seconds
from bench.servers import ROOT, Fleet, Server, gateway_config, start_gateway, start_upstream

sys.path.insert(0, str(ROOT / "tests"))  # the real-server helpers the tests use
from postgres_server import PostgresServer, binaries
from redis_server import RedisServer


async def run(ctx: Context) -> dict[str, Any]:
    redis_bin, pg_bin = shutil.which("redis-server"), binaries()
    if redis_bin is None or pg_bin is None:
        return {"skipped": "needs redis-server and PostgreSQL (Debian: apt-get install redis-server postgresql)",
                "results": []}
    levels, warmup, duration = ctx.pick(((16, 64), 2.0, 8.0), ((6,), 0.2, 0.6))
    replica_counts = (1, 2, 3)
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as redis_dir, Fleet(ctx.workdir) as fleet:
        redis_server = RedisServer(Path(redis_dir), redis_bin).start()
        postgres = PostgresServer(pg_bin).init()
        try:
            upstream = fleet.add(start_upstream(ctx.workdir))
            lineups: list[tuple[str, list[Server]]] = [("sqlite", [fleet.add(start_gateway(ctx.workdir, upstream))])]
            for n in replica_counts:
                config = _cluster_config(upstream.url, redis_server.url, postgres.dsn_for(postgres.create_database()),
                                         prefix=f"bench{n}")
                lineups.append((f"replicas-{n}", [fleet.add(start_gateway(ctx.workdir, None, config))
                                                  for _ in range(n)]))
            redis_pid = redis_server.process.pid if redis_server.process else 0
            runs = []
            for concurrency in levels:
                for label, replicas in lineups:
                    runs.append(await _spread(label, replicas, upstream, concurrency, warmup, duration,
                                              (lambda: [redis_pid, *_postgres_pids(postgres)]) if label != "sqlite"
                                              else list))
                    print(f"  c={concurrency:<4} {label:<12} {runs[-1]['turns_per_s']:>8} turns/s  "
                          f"errors {runs[-1]['errors']}  cpu ms/turn {runs[-1]['cpu_ms_per_turn']}", flush=True)
        finally:
            postgres.close()
            redis_server.stop()
    return {"params": {"concurrency": list(levels), "warmup_s": warmup, "window_s": duration,
                       "replicas": list(replica_counts), "cores": _cores(),
                       "note": "closed-loop workers spread round-robin over the replicas, each turn a new stored "
                               "conversation; cpu ms/turn: gateways, and for the cluster redis-server and "
                               "PostgreSQL too, from /proc"},
            "results": runs, "vs_sqlite": _ratios(runs)}


def _cluster_config(upstream_url: str, redis_url: str, dsn: str, prefix: str) -> str:
    return (gateway_config(upstream_url) + f'\n[bus]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "{prefix}"\n\n'
            f'[session]\nbackend = "postgres"\ndsn = "{dsn}"\npool_size = 20\n')


async def _spread(label: str, replicas: list[Server], upstream: Server, concurrency: int, warmup: float,
                  duration: float, backends: Callable[[], list[int]]) -> dict[str, Any]:
    """`concurrency` workers over the replicas; one closed loop per replica, run at the same time."""
    shares = [concurrency // len(replicas) + (i < concurrency % len(replicas)) for i in range(len(replicas))]
    # PostgreSQL starts a backend per new connection: CPU of processes that appear during the run counts from 0.
    before = {pid: cpu_seconds(pid) for pid in backends()}
    outcomes: list[LoadResult] = await asyncio.gather(*(
        closed_loop(Target(f"{label}-{i}", server), upstream, share, duration, warmup)
        for i, (server, share) in enumerate(zip(replicas, shares, strict=True)) if share))
    backend_cpu = sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in backends())
    turns = sum(o.completed for o in outcomes)
    latencies = sorted(x for o in outcomes for x in o.latencies)
    cpu = sum(o.server_cpu for o in outcomes) + backend_cpu * duration / (duration + warmup)
    return {"target": label, "replicas": len(replicas), "concurrency": concurrency, "turns": turns,
            "turns_per_s": round(turns / duration, 1), "errors": sum(o.errors for o in outcomes),
            "error_samples": [s for o in outcomes for s in o.error_samples][:3],
            "latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
            "cpu_ms_per_turn": round(1000 * cpu / turns, 2) if turns else None,
            "backend_cpu_ms_per_turn": round(1000 * backend_cpu * duration / (duration + warmup) / turns, 2)
            if turns and before else None}


def _ratios(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    base = {r["concurrency"]: r["turns_per_s"] for r in runs if r["target"] == "sqlite"}
    out: dict[str, dict[str, float]] = {}
    for r in runs:
        if r["target"] != "sqlite" and base.get(r["concurrency"]):
            out.setdefault(r["target"], {})[str(r["concurrency"])] = round(r["turns_per_s"] / base[r["concurrency"]], 3)
    return out


def _postgres_pids(postgres: PostgresServer) -> list[int]:
    """The postmaster and its backends: every process whose parent is the postmaster."""
    pid_file = postgres.data_dir / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == postmaster]
    return [postmaster, *children]


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))
