"""The MessageBus protocol: the only way channels and the agent talk to each other, and, for a cluster of
gateway replicas, how they share turns, conversations and the one leader that runs cron and the heartbeat."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from mofaclaw.bus.events import InboundMessage, OutboundMessage

# The catch-all subscription: outbound messages for a channel nobody subscribed to go there.
UNROUTED = "*"


@dataclass(frozen=True, slots=True)
class BusStatus:
    """What `mofaclaw status` shows about the bus."""

    backend: str  # "memory" or "redis"
    where: str  # e.g. "in process", or the Redis URL without its password
    replicas: tuple[str, ...] = ()  # the replicas seen alive (Redis), this one included when running


class MessageBus(Protocol):
    # This process's name among the replicas (made up at start; nobody sets it by hand).
    replica: str

    async def publish_inbound(self, message: InboundMessage) -> None:
        """Queue a turn (or a cancel). A message with no `reply_to` is stamped with this replica, so
        its replies come back here. Raises BackendUnavailable when the bus cannot take it."""
        ...

    async def consume_inbound(self) -> InboundMessage:
        """The next message for this process's agent loop: a turn claimed by this replica, or a cancel."""
        ...

    async def publish_outbound(self, message: OutboundMessage) -> None:
        """Deliver to the subscription of `message.channel` on the replica named by `message.reply_to`
        (this one when empty)."""
        ...

    def subscribe(self, channel: str) -> OutboundSubscription: ...

    def turn(self, message: InboundMessage) -> AbstractAsyncContextManager[bool]:
        """Hold the conversation of `message` while its turn runs: turns of one conversation run one at a
        time (across every replica), in the order they arrived. Yields False when the turn must not run
        (cancelled before it started, or already started by a replica that died); on exit, a message
        claimed from the bus is acknowledged, so it is never run again."""
        ...

    async def run_as_leader(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` on one replica of the cluster at a time (cron, the heartbeat): wait until this
        replica leads, run it, cancel it if the lead is lost, and try again. In process: run it now."""
        ...

    async def run(self) -> None:
        """Background work while the runtime runs (reading replies, reclaiming a dead replica's turns,
        renewing leases); runs until cancelled."""
        ...

    async def connect(self) -> None:
        """Check the backend can be reached; raises BackendUnavailable with one clear line if not."""
        ...

    async def status(self) -> BusStatus: ...

    async def close(self) -> None: ...


class OutboundSubscription(Protocol):
    """Outbound messages addressed to one channel, in the order they were published."""

    async def get(self) -> OutboundMessage: ...
