"""Added latency: non-streaming turns one at a time, each target versus calling the upstream directly."""

from __future__ import annotations

from typing import Any

from bench.context import Context, added
from bench.load import Target, sequential
from bench.servers import Fleet, start_gateway, start_nanobot, start_relay, start_upstream


async def run(ctx: Context) -> dict[str, Any]:
    requests, warmup = ctx.pick((1000, 50), (20, 3))
    with Fleet(ctx.workdir) as fleet:
        upstream = fleet.add(start_upstream(ctx.workdir))
        relay = fleet.add(start_relay(ctx.workdir, upstream))
        gateway = fleet.add(start_gateway(ctx.workdir, upstream, variant=ctx.variant))
        targets = [Target("direct", upstream), Target("relay", relay), Target("gateway", gateway),
                   Target("gateway-stateless", gateway, conversations=False)]
        if ctx.nanobot:
            targets.append(Target("nanobot", fleet.add(start_nanobot(ctx.workdir, upstream))))
        results = await sequential(targets, requests, warmup)
    return {"params": {"requests": requests, "warmup": warmup, "stream": False,
                       "note": "round-robin over targets; gateway: a new conversation_id per turn (history read "
                               "+ session commit); gateway-stateless: no conversation_id"},
            "results": results, "added_vs_direct": added(results, "direct", "latency_ms")}
