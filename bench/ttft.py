"""Time to first token: streamed turns one at a time, the upstream waiting a fixed delay before each token."""

from __future__ import annotations

from typing import Any

from bench.context import Context, added
from bench.load import Target, sequential
from bench.servers import Fleet, start_gateway, start_nanobot, start_relay, start_upstream

TOKEN_DELAY = 0.02  # seconds before each streamed word, the first included


async def run(ctx: Context) -> dict[str, Any]:
    requests, warmup = ctx.pick((300, 20), (6, 2))
    with Fleet(ctx.workdir) as fleet:
        upstream = fleet.add(start_upstream(ctx.workdir, TOKEN_DELAY))
        relay = fleet.add(start_relay(ctx.workdir, upstream))
        gateway = fleet.add(start_gateway(ctx.workdir, upstream, variant=ctx.variant))
        targets = [Target("direct", upstream), Target("relay", relay), Target("gateway", gateway),
                   Target("gateway-stateless", gateway, conversations=False)]
        if ctx.nanobot:
            targets.append(Target("nanobot", fleet.add(start_nanobot(ctx.workdir, upstream))))
        results = await sequential(targets, requests, warmup, stream=True)
    return {"params": {"requests": requests, "warmup": warmup, "stream": True, "token_delay_s": TOKEN_DELAY,
                       "note": "TTFT = request sent -> first SSE event with non-empty content; reply = 5 words"},
            "results": results, "added_vs_direct": added(results, "direct", "ttft_ms")}
