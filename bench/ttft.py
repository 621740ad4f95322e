"""Time to first token: streamed turns one at a time, the upstream waiting a fixed delay before each token."""

from __future__ import annotations

from typing import Any

from bench.context import Context, added
from bench.lineup import side_by_side
from bench.load import sequential
from bench.servers import Fleet

TOKEN_DELAY = 0.02  # seconds before each streamed word, the first included


async def run(ctx: Context) -> dict[str, Any]:
    requests, warmup = ctx.pick((300, 20), (6, 2))
    with Fleet(ctx.workdir) as fleet:
        _, targets = side_by_side(ctx, fleet, TOKEN_DELAY)
        results = await sequential(targets, requests, warmup, stream=True)
    return {"params": {"requests": requests, "warmup": warmup, "stream": True, "token_delay_s": TOKEN_DELAY,
                       "note": "TTFT = request sent -> first SSE event with non-empty content; reply = 5 words"},
            "results": results, "added_vs_direct": added(results, "direct", "ttft_ms")}
