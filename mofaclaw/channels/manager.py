"""ChannelManager: runs the enabled channels, restarts a failing one, and routes outbound messages."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable

from mofaclaw.bus.base import UNROUTED, MessageBus, OutboundSubscription
from mofaclaw.bus.events import OutboundMessage
from mofaclaw.channels.base import Channel, ChannelFatal, StreamingChannel

log = logging.getLogger(__name__)


class ChannelManager:
    def __init__(
        self,
        bus: MessageBus,
        channels: Iterable[Channel] = (),
        restart_initial: float = 1.0,
        restart_max: float = 60.0,
        drop_unrouted: bool = True,
    ) -> None:
        self.bus = bus
        self.channels: dict[str, Channel] = {}
        self.restart_initial = restart_initial
        self.restart_max = restart_max
        self.restarts: dict[str, int] = {}
        self._queues: dict[str, OutboundSubscription] = {}
        # One manager per process drains the catch-all; a second one (the leader's chat channels) does not.
        self._unrouted = bus.subscribe(UNROUTED) if drop_unrouted else None
        for channel in channels:
            self.add(channel)

    def add(self, channel: Channel) -> None:
        """Manage one more channel; before run()."""
        self.channels[channel.name] = channel
        self.restarts[channel.name] = 0
        # Subscribed now, not when the tasks start, so nothing published in between is lost.
        self._queues[channel.name] = self.bus.subscribe(channel.name)

    async def run(self) -> None:
        """Run every channel and its outbound dispatcher until cancelled."""
        async with asyncio.TaskGroup() as tg:
            if self._unrouted is not None:
                tg.create_task(self._drop_unrouted())
            for channel in self.channels.values():
                tg.create_task(self._supervise(channel))
                tg.create_task(self._dispatch(channel))

    async def _supervise(self, channel: Channel) -> None:
        """Keep one channel running; a failure restarts it after a growing delay, others go on."""
        delay = self.restart_initial
        while True:
            try:
                await channel.start()
                log.info("channel %s stopped", channel.name)
                return
            except ChannelFatal as exc:
                log.error("channel %s is off: %s", channel.name, exc)
                return
            except Exception:  # task boundary: one channel's crash must not stop the others
                log.exception("channel %s failed; restarting in %.1fs", channel.name, delay)
            finally:
                await _quietly_stop(channel)
            self.restarts[channel.name] += 1
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.restart_max)

    async def _dispatch(self, channel: Channel) -> None:
        queue = self._queues[channel.name]
        streams = isinstance(channel, StreamingChannel)
        while True:
            message = await queue.get()
            if message.kind in ("delta", "progress") and not streams:
                continue  # this channel shows only the final message
            try:
                if message.kind in ("delta", "progress"):
                    await channel.send_delta(message)  # type: ignore[attr-defined]
                else:
                    await channel.send(message)
            except Exception:  # task boundary: one failed send must not stop the channel
                log.exception("channel %s could not send a %s message", channel.name, message.kind)

    async def _drop_unrouted(self) -> None:
        assert self._unrouted is not None
        while True:
            message: OutboundMessage = await self._unrouted.get()
            if message.kind == "delta":
                continue
            log.warning("no channel named %r: dropped a %s message for chat %s",
                        message.channel, message.kind, message.chat_id)


async def _quietly_stop(channel: Channel) -> None:
    try:
        await channel.stop()
    except Exception:
        log.exception("channel %s failed to stop cleanly", channel.name)
