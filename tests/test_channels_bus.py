"""The bus and the channel manager: routing, back-pressure, a failing channel, allow-lists."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.channels.base import ChannelFatal, sender_allowed
from mofaclaw.channels.manager import ChannelManager


class FakeChannel:
    """A channel of our own protocol that records what it was sent."""

    def __init__(self, name: str, streams: bool = False) -> None:
        self.name = name
        self.sent: asyncio.Queue[OutboundMessage] = asyncio.Queue()
        self.starts = 0
        self.stopped = 0
        if streams:
            self.send_delta = self._send_delta

    async def start(self) -> None:
        self.starts += 1
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped += 1

    async def send(self, message: OutboundMessage) -> None:
        await self.sent.put(message)

    async def _send_delta(self, message: OutboundMessage) -> None:
        await self.sent.put(message)


class CrashingChannel(FakeChannel):
    def __init__(self, name: str, crashes: int) -> None:
        super().__init__(name)
        self.crashes = crashes
        self.running = asyncio.Event()

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self.crashes:
            raise ConnectionError("network down")
        self.running.set()
        await asyncio.Event().wait()


async def test_outbound_is_routed_by_channel_name_and_deltas_only_to_streaming_channels(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = InMemoryBus()
    plain, streaming = FakeChannel("plain"), FakeChannel("live", streams=True)
    manager = ChannelManager(bus, [plain, streaming])
    task = asyncio.create_task(manager.run())
    try:
        await bus.publish_outbound(OutboundMessage("plain", "c", "a", kind="delta"))
        await bus.publish_outbound(OutboundMessage("plain", "c", "final"))
        await bus.publish_outbound(OutboundMessage("live", "c", "d", kind="delta"))
        await bus.publish_outbound(OutboundMessage("live", "c", "done"))
        with caplog.at_level(logging.WARNING):
            await bus.publish_outbound(OutboundMessage("nowhere", "c", "lost?"))
            await bus.publish_outbound(OutboundMessage("plain", "c", "after"))
            got = await asyncio.wait_for(plain.sent.get(), 2)
            assert (got.kind, got.content) == ("message", "final")  # the delta was not sent
            assert (await asyncio.wait_for(plain.sent.get(), 2)).content == "after"
        assert [(await streaming.sent.get()).kind for _ in range(2)] == ["delta", "message"]
        assert "no channel named 'nowhere'" in caplog.text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failing_channel_restarts_with_backoff_while_others_keep_working() -> None:
    bus = InMemoryBus()
    flaky, steady = CrashingChannel("flaky", crashes=2), FakeChannel("steady")
    manager = ChannelManager(bus, [flaky, steady], restart_initial=0.01, restart_max=0.05)
    task = asyncio.create_task(manager.run())
    try:
        await bus.publish_outbound(OutboundMessage("steady", "c", "still here"))
        assert (await asyncio.wait_for(steady.sent.get(), 2)).content == "still here"
        await asyncio.wait_for(flaky.running.wait(), 5)
        assert flaky.starts == 3 and manager.restarts["flaky"] == 2 and flaky.stopped == 2
        assert steady.starts == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failing_send_does_not_stop_the_channel(caplog: pytest.LogCaptureFixture) -> None:
    bus = InMemoryBus()
    channel = FakeChannel("c")
    calls = 0
    original = channel.send

    async def sometimes_fails(message: OutboundMessage) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("API said no")
        await original(message)

    channel.send = sometimes_fails  # type: ignore[method-assign]
    task = asyncio.create_task(ChannelManager(bus, [channel]).run())
    try:
        with caplog.at_level(logging.ERROR):
            await bus.publish_outbound(OutboundMessage("c", "x", "first"))
            await bus.publish_outbound(OutboundMessage("c", "x", "second"))
            assert (await asyncio.wait_for(channel.sent.get(), 2)).content == "second"
        assert "could not send" in caplog.text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_bus_applies_back_pressure_and_drops_nothing() -> None:
    bus = InMemoryBus(maxsize=2)
    await bus.publish_inbound(InboundMessage("t", "u", "c", "1"))
    await bus.publish_inbound(InboundMessage("t", "u", "c", "2"))
    third = asyncio.create_task(bus.publish_inbound(InboundMessage("t", "u", "c", "3")))
    await asyncio.sleep(0)
    assert not third.done()  # the producer waits: the queue is full
    assert (await bus.consume_inbound()).content == "1"
    await asyncio.wait_for(third, 1)
    assert [(await bus.consume_inbound()).content for _ in range(2)] == ["2", "3"]


def test_allow_from_is_deny_by_default() -> None:
    assert not sender_allowed([], "alice")
    assert sender_allowed(["alice"], "alice") and not sender_allowed(["alice"], "bob")
    assert sender_allowed(["*"], "anyone")


def test_session_key_and_request_ids() -> None:
    a, b = InboundMessage("telegram", "u", "42", "hi"), InboundMessage("telegram", "u", "42", "hi")
    assert a.session_key == "telegram:42" and a.request_id != b.request_id
    assert InboundMessage("cli", "u", "x", "hi", session_key_override="cli:work").session_key == "cli:work"


class MisconfiguredChannel(FakeChannel):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.stopped_event = asyncio.Event()

    async def start(self) -> None:
        self.starts += 1
        raise ChannelFatal("the token was rejected")

    async def stop(self) -> None:
        self.stopped_event.set()


async def test_a_channel_that_cannot_run_is_left_off_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    bus = InMemoryBus()
    broken, fine = MisconfiguredChannel("broken"), FakeChannel("fine")
    manager = ChannelManager(bus, [broken, fine], restart_initial=0.0)
    task = asyncio.create_task(manager.run())
    try:
        async with asyncio.timeout(5):
            await broken.stopped_event.wait()
        await bus.publish_outbound(OutboundMessage("fine", "c1", "still here"))
        async with asyncio.timeout(5):
            assert (await fine.sent.get()).content == "still here"  # the others go on
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [record] = [r for r in caplog.records if "broken" in r.getMessage()]
    assert record.getMessage() == "channel broken is off: the token was rejected" and record.exc_info is None
    assert broken.starts == 1
