"""Added latency: non-streaming turns one at a time, each target versus calling the upstream directly."""

from __future__ import annotations

from typing import Any

from bench.context import Context, added
from bench.lineup import side_by_side
from bench.load import sequential
from bench.servers import Fleet


async def run(ctx: Context) -> dict[str, Any]:
    requests, warmup = ctx.pick((1000, 50), (20, 3))
    with Fleet(ctx.workdir) as fleet:
        _, targets = side_by_side(ctx, fleet)
        results = await sequential(targets, requests, warmup)
    return {"params": {"requests": requests, "warmup": warmup, "stream": False,
                       "note": "round-robin over targets; gateway: a new conversation_id per turn (history read "
                               "+ session commit); gateway-stateless: no conversation_id"},
            "results": results, "added_vs_direct": added(results, "direct", "latency_ms")}
