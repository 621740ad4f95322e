"""The default in-process bus: bounded asyncio queues, so a flood slows producers instead of dropping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from mofaclaw.bus.base import UNROUTED, BusStatus
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.bus.locks import KeyedLocks

log = logging.getLogger(__name__)


class InMemoryBus:
    """Inbound: one bounded queue the agent consumes. Outbound: one bounded queue per subscribed
    channel; messages for a channel nobody subscribed to go to the catch-all subscription ("*"),
    where the channel manager logs and drops them, so nothing disappears silently."""

    replica = "local"

    def __init__(self, maxsize: int = 1000) -> None:
        self._maxsize = maxsize
        self._inbound: asyncio.Queue[InboundMessage] = asyncio.Queue(maxsize)
        self._outbound: dict[str, asyncio.Queue[OutboundMessage]] = {}
        self._conversations = KeyedLocks()

    async def publish_inbound(self, message: InboundMessage) -> None:
        await self._inbound.put(message)

    async def consume_inbound(self) -> InboundMessage:
        return await self._inbound.get()

    async def publish_outbound(self, message: OutboundMessage) -> None:
        queue = self._outbound.get(message.channel) or self._outbound.get(UNROUTED)
        if queue is None:
            log.warning("dropping outbound %s for channel %r: no subscriber", message.kind, message.channel)
            return
        await queue.put(message)

    def subscribe(self, channel: str) -> asyncio.Queue[OutboundMessage]:
        """The queue of outbound messages for `channel` (the same queue on every call)."""
        return self._outbound.setdefault(channel, asyncio.Queue(self._maxsize))

    @asynccontextmanager
    async def turn(self, message: InboundMessage) -> AsyncIterator[bool]:
        async with self._conversations.hold(message.session_key):  # asyncio.Lock is first come, first served
            yield True

    async def run_as_leader(self, work: Callable[[], Awaitable[None]]) -> None:
        await work()  # one process: it is the only replica

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def connect(self) -> None:
        return None

    async def status(self) -> BusStatus:
        return BusStatus("memory", "in process")

    async def close(self) -> None:
        return None
