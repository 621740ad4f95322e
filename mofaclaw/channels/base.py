"""The Channel protocol and the allow-list rule every channel applies to senders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from mofaclaw.bus.events import OutboundMessage
from mofaclaw.errors import MofaclawError


class ChannelFatal(MofaclawError):
    """A channel cannot run until its configuration changes (a rejected token): restarting it only
    repeats the failure, so the manager logs this one line and leaves the channel off."""


class Channel(Protocol):
    name: str

    async def start(self) -> None:
        """Connect and serve until cancelled (a polling loop, a webhook server, ...)."""
        ...

    async def stop(self) -> None:
        """Release what start() acquired; called after start() ends, however it ended."""
        ...

    async def send(self, message: OutboundMessage) -> None: ...


@runtime_checkable
class StreamingChannel(Protocol):
    """A channel that can show an answer while it is being written."""

    async def send_delta(self, message: OutboundMessage) -> None: ...


def sender_allowed(allow_from: Sequence[str], sender_id: str) -> bool:
    """Deny by default: an empty list admits nobody, ["*"] admits everybody."""
    return "*" in allow_from or sender_id in allow_from
