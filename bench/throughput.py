"""Throughput: closed-loop workers at several concurrencies, every turn a new conversation."""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.lineup import side_by_side
from bench.load import closed_loop
from bench.servers import Fleet


async def run(ctx: Context) -> dict[str, Any]:
    levels, warmup, duration = ctx.pick(((1, 16, 64, 256), 2.0, 8.0), ((1, 4), 0.2, 0.6))
    with Fleet(ctx.workdir) as fleet:
        upstream, targets = side_by_side(ctx, fleet)
        runs = []
        for concurrency in levels:
            for target in targets:
                outcome = await closed_loop(target, upstream, concurrency, duration, warmup)
                runs.append(outcome.report())
                print(f"  c={concurrency:<4} {target.label:<18} {runs[-1]['turns_per_s']:>8} turns/s  "
                      f"errors {runs[-1]['errors']}", flush=True)
    return {"params": {"concurrency": list(levels), "warmup_s": warmup, "window_s": duration,
                       "note": "one keep-alive connection per worker; turns/s counts answers checked word for "
                               "word; errors include the warm-up; CPU ms/turn from /proc (direct: the upstream)"},
            "results": runs, "vs_relay": _ratios(runs)}


def _ratios(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    by = {(r["target"], r["concurrency"]): r["turns_per_s"] for r in runs}
    out: dict[str, dict[str, float | None]] = {}
    for (target, concurrency), turns in by.items():
        relay = by.get(("relay", concurrency))
        if target != "relay" and relay:
            out.setdefault(target, {})[str(concurrency)] = round(turns / relay, 3)
    return out
