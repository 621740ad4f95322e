"""The MessageBus protocol: the only way channels and the agent talk to each other."""

from __future__ import annotations

from typing import Protocol

from mofaclaw.bus.events import InboundMessage, OutboundMessage

# The catch-all subscription: outbound messages for a channel nobody subscribed to go there.
UNROUTED = "*"


class MessageBus(Protocol):
    async def publish_inbound(self, message: InboundMessage) -> None: ...

    async def consume_inbound(self) -> InboundMessage: ...

    async def publish_outbound(self, message: OutboundMessage) -> None: ...

    def subscribe(self, channel: str) -> OutboundSubscription: ...


class OutboundSubscription(Protocol):
    """Outbound messages addressed to one channel, in the order they were published."""

    async def get(self) -> OutboundMessage: ...
