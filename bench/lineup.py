"""The lineup every side-by-side benchmark starts: upstream, relay, gateway (with and without
conversations) and, when installed, nanobot — all on the same upstream."""

from __future__ import annotations

from bench.context import Context
from bench.load import Target
from bench.servers import Fleet, Server, start_gateway, start_nanobot, start_relay, start_upstream


def side_by_side(ctx: Context, fleet: Fleet, token_delay: float = 0.0) -> tuple[Server, list[Target]]:
    """The upstream, and the targets in the order the tables show them."""
    upstream = fleet.add(start_upstream(ctx.workdir, token_delay))
    relay = fleet.add(start_relay(ctx.workdir, upstream))
    gateway = fleet.add(start_gateway(ctx.workdir, upstream, variant=ctx.variant))
    targets = [Target("direct", upstream), Target("relay", relay), Target("gateway", gateway),
               Target("gateway-stateless", gateway, conversations=False)]
    if ctx.nanobot:
        targets.append(Target("nanobot", fleet.add(start_nanobot(ctx.workdir, upstream))))
    return upstream, targets
