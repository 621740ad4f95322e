"""The Redis bus: gateway replicas share turns through a Redis Stream and a consumer group, each turn claimed by
one replica, its replies sent back to the replica that holds the client, a dead replica's turns taken over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

from redis.exceptions import ResponseError

from mofaclaw.bus.base import UNROUTED, BusStatus
from mofaclaw.bus.codec import CodecError, decode_inbound, decode_outbound, encode_inbound, encode_outbound
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.bus.redis_keys import CANCELLED_TTL_MS, GROUP, PUBLISH_TURN, REPLY, REPLY_MAXLEN, Keys
from mofaclaw.bus.redis_leader import Leadership
from mofaclaw.bus.redis_link import BLOCK_MS, Link, Outage, check_cancelled, open_client
from mofaclaw.bus.redis_reclaim import Orphans
from mofaclaw.bus.redis_turns import Conversations, Finish, waiter
from mofaclaw.errors import BackendUnavailable, TurnErrorCode

log = logging.getLogger(__name__)

DIED_MID_TURN = "The replica running this turn stopped before it ended; nothing was saved. Send it again."
FINAL_KINDS = ("message", "error")  # worth retrying through a short outage; a lost delta is not


def replica_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisBus:
    """One replica's end of the cluster's bus. `run()` is its heartbeat: while it runs the replica is
    alive (its liveness key, leases and leader lease are renewed every lease/3); when it stops, the
    others take over its turns within about `lease` seconds."""

    def __init__(self, url: str, *, lease: float = 15.0, prefix: str = "mofaclaw", maxsize: int = 1000) -> None:
        self.replica = replica_name()
        self._link = Link(url)
        self._client = open_client(url)
        self._keys = Keys(prefix)
        self._lease = lease
        self._lease_ms = max(1, int(lease * 1000))
        self._maxsize = maxsize
        self._publish_turn = self._client.register_script(PUBLISH_TURN)
        self._reply = self._client.register_script(REPLY)
        self._conversations = Conversations(self._client, self._link, self._keys, self.replica, lease)
        self._leadership = Leadership(self._client, self._link, self._keys, self.replica, lease)
        self._orphans = Orphans(self._client, self._link, self._keys, self.replica, lease)
        self._outbound: dict[str, asyncio.Queue[OutboundMessage]] = {}
        self._local: asyncio.Queue[InboundMessage] = asyncio.Queue()  # cancels and reclaimed turns
        self._read: asyncio.Task[InboundMessage] | None = None
        self._entries: dict[str, str] = {}  # request id -> stream entry id, from claim to turn()
        self._inflight: set[str] = set()  # entry ids claimed here and not yet ended
        self._reply_outage = False
        self._serving = False  # an agent loop consumes here: only then does this replica take turns over

    # -- inbound -----------------------------------------------------------------------------------------

    async def publish_inbound(self, message: InboundMessage) -> None:
        if not message.reply_to:
            message = replace(message, reply_to=self.replica)
        if message.kind == "cancel":
            await self._cancel(message)
            return
        with self._link.reaching():
            await self._publish_turn(keys=[self._keys.inbound, self._keys.queue(message.session_key)],
                                     args=[message.request_id, encode_inbound(message)])

    async def _cancel(self, message: InboundMessage) -> None:
        # Marked first, so a replica that has the turn queued but not started refuses it; then broadcast,
        # so the replica running it stops it.
        try:
            with self._link.reaching():
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.set(self._keys.cancelled(message.request_id), "1", px=CANCELLED_TTL_MS)
                    pipe.publish(self._keys.events, f"c{self.replica}\n{encode_inbound(message)}")
                    await pipe.execute()
        except BackendUnavailable as exc:
            log.warning("the cancel of turn %s reached only this replica: %s", message.request_id, exc)
        self._local.put_nowait(message)

    async def consume_inbound(self) -> InboundMessage:
        self._serving = True
        if not self._local.empty():
            return self._local.get_nowait()
        if self._read is None:
            self._read = asyncio.create_task(self._read_turn(), name=f"redis-bus-read-{self.replica}")
        local = asyncio.ensure_future(self._local.get())
        try:
            await asyncio.wait({local, self._read}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if local.done() and not local.cancelled():
                self._local.put_nowait(local.result())
            # Nobody consumes any more: stop claiming turns (one claimed meanwhile is reclaimed later).
            self._serving = False
            self._read.cancel()
            self._read = None
            raise
        finally:
            local.cancel()
        if local.done() and not local.cancelled():
            return local.result()  # the read goes on, for the next call
        read, self._read = self._read, None
        return read.result()

    async def _read_turn(self) -> InboundMessage:
        outage = Outage(f"replica {self.replica} reading turns")
        while True:
            check_cancelled()
            try:
                with self._link.reaching():
                    got = await self._client.xreadgroup(GROUP, self.replica, {self._keys.inbound: ">"},
                                                        count=1, block=BLOCK_MS)
            except BackendUnavailable as exc:
                await outage.failed(exc)
                continue
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                try:
                    await self._create_group()  # Redis restarted without its data
                except BackendUnavailable as lost:
                    await outage.failed(lost)
                continue
            outage.ok()
            for _stream, entries in got or ():
                for entry_id, fields in entries:
                    message = await self._claimed(entry_id, fields)
                    if message is not None:
                        return message

    async def _claimed(self, entry_id: str, fields: dict[str, str] | None) -> InboundMessage | None:
        try:
            message = decode_inbound((fields or {})["data"])
        except (KeyError, CodecError) as exc:
            log.error("dropping an unreadable turn %s from the stream: %s", entry_id, exc)
            # Deleted too, so the conversation it queued in sees it gone and moves on.
            with contextlib.suppress(BackendUnavailable), self._link.reaching():
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.xack(self._keys.inbound, GROUP, entry_id)
                    pipe.xdel(self._keys.inbound, entry_id)
                    await pipe.execute()
            return None
        self._entries[message.request_id] = entry_id
        self._inflight.add(entry_id)
        return message

    @asynccontextmanager
    async def turn(self, message: InboundMessage) -> AsyncIterator[bool]:
        entry_id = self._entries.pop(message.request_id, None)
        try:
            async with self._conversations.hold(message, entry_id) as go:
                yield go
        finally:
            if entry_id is not None:
                self._inflight.discard(entry_id)

    # -- outbound ----------------------------------------------------------------------------------------

    async def publish_outbound(self, message: OutboundMessage) -> None:
        target = message.reply_to or self.replica
        if target == self.replica:
            await self._deliver(message)
            return
        data = encode_outbound(message)
        deadline = time.monotonic() + self._lease
        while True:
            check_cancelled()
            try:
                with self._link.reaching():
                    sent = await self._reply(keys=[self._keys.replica(target), self._keys.replies(target)],
                                             args=[data, REPLY_MAXLEN, self._lease_ms])
                break
            except BackendUnavailable as exc:
                # A turn must not fail for a reply it cannot send: the client's replica, cut off from
                # Redis too, answers its client with its own timeout.
                if message.kind not in FINAL_KINDS or time.monotonic() > deadline:
                    if not self._reply_outage:
                        log.warning("dropping replies for other replicas while Redis is away: %s", exc)
                    self._reply_outage = True
                    return
                await asyncio.sleep(0.2)
        self._reply_outage = False
        if not sent:
            log.info("dropped a %s for request %s: replica %s is gone", message.kind, message.request_id, target)

    def subscribe(self, channel: str) -> asyncio.Queue[OutboundMessage]:
        """The queue of outbound messages for `channel` on this replica (the same queue on every call)."""
        return self._outbound.setdefault(channel, asyncio.Queue(self._maxsize))

    async def _deliver(self, message: OutboundMessage) -> None:
        queue = self._outbound.get(message.channel) or self._outbound.get(UNROUTED)
        if queue is None:
            log.warning("dropping outbound %s for channel %r: no subscriber", message.kind, message.channel)
            return
        await queue.put(message)

    # -- leader ------------------------------------------------------------------------------------------

    async def run_as_leader(self, work: Callable[[], Awaitable[None]]) -> None:
        await self._leadership.run(work)

    # -- background work ---------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._heartbeat())
            tg.create_task(self._read_replies())
            tg.create_task(self._listen())
            tg.create_task(self._reclaim())

    async def _heartbeat(self) -> None:
        # Back-off capped at a beat: when Redis returns, this replica is alive again at once.
        outage = Outage(f"replica {self.replica} heartbeat", cap=min(2.0, self._lease / 3))
        while True:
            check_cancelled()
            try:
                await self._beat()
                await self._leadership.renew()
                await self._conversations.renew()
                await self._conversations.retry_unfinished()
            except (BackendUnavailable, ResponseError) as exc:
                self._leadership.unsure()
                await outage.failed(exc)
                continue
            outage.ok()
            await asyncio.sleep(self._lease / 3)

    async def _beat(self) -> None:
        with self._link.reaching():
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._keys.replica(self.replica), str(int(time.time())), px=self._lease_ms)
                pipe.pexpire(self._keys.replies(self.replica), self._lease_ms)
                await pipe.execute()

    async def _read_replies(self) -> None:
        outage = Outage(f"replica {self.replica} reading replies")
        stream = self._keys.replies(self.replica)
        last = "0-0"
        while True:
            check_cancelled()
            try:
                with self._link.reaching():
                    got = await self._client.xread({stream: last}, count=100, block=BLOCK_MS)
                    done = [entry_id for _, entries in got or () for entry_id, _ in entries]
                    if done:
                        await self._client.xdel(stream, *done)
            except BackendUnavailable as exc:
                await outage.failed(exc)
                continue
            outage.ok()
            for _, entries in got or ():
                for entry_id, fields in entries:
                    last = entry_id
                    try:
                        message = decode_outbound((fields or {})["data"])
                    except (KeyError, CodecError) as exc:
                        log.error("dropping an unreadable reply %s: %s", entry_id, exc)
                        continue
                    await self._deliver(message)

    async def _listen(self) -> None:
        """Cancels from other replicas, released conversations, a freed leader lease (pub/sub)."""
        outage = Outage(f"replica {self.replica} listening for cancels")
        while True:
            check_cancelled()
            pubsub = self._client.pubsub()
            try:
                with self._link.reaching():
                    await pubsub.subscribe(self._keys.events)
                    outage.ok()
                    while True:
                        check_cancelled()
                        event = await pubsub.get_message(ignore_subscribe_messages=True, timeout=BLOCK_MS / 1000)
                        if event is not None:
                            self._on_event(str(event["data"]))
            except BackendUnavailable as exc:
                await outage.failed(exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _on_event(self, data: str) -> None:
        kind, body = data[:1], data[1:]
        if kind == "r":
            self._conversations.released(body)
        elif kind == "l":
            self._leadership.freed()
        elif kind == "c":
            origin, _, text = body.partition("\n")
            if origin != self.replica:
                try:
                    self._local.put_nowait(decode_inbound(text))
                except CodecError as exc:
                    log.error("dropping an unreadable cancel: %s", exc)

    async def _reclaim(self) -> None:
        """Take over turns claimed by a replica that died (or claimed here and then forgotten)."""
        outage = Outage(f"replica {self.replica} reclaiming turns")
        while True:
            check_cancelled()
            try:
                if self._serving:
                    await self._reclaim_once()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):  # no group yet: the stream has no turns to take over
                    await outage.failed(exc)
                    continue
            except BackendUnavailable as exc:
                await outage.failed(exc)
                continue
            outage.ok()
            await asyncio.sleep(self._lease / 3)

    async def _reclaim_once(self) -> None:
        async for entry_id, fields, owner in self._orphans.claim(self._in_hand):
            await self._take_over(entry_id, fields, owner)
        await self._orphans.forget_dead_consumers()

    def _in_hand(self, entry_id: str) -> bool:
        return entry_id in self._inflight or self._conversations.ending(entry_id)

    async def _take_over(self, entry_id: str, fields: dict[str, str] | None, owner: str) -> None:
        message = await self._claimed(entry_id, fields)
        if message is None:
            return
        try:
            with self._link.reaching():
                started = await self._client.exists(self._keys.started(message.request_id))
        except BackendUnavailable:
            self._entries.pop(message.request_id, None)  # not in hand: the next round takes it again
            self._inflight.discard(entry_id)
            raise
        if not started:
            log.warning("turn %s, claimed by %s, never started; running it here", message.request_id, owner)
            self._local.put_nowait(message)
            return
        # It ran on the dead replica, which committed nothing (its turn never ended): answer the client
        # rather than run it twice.
        log.warning("replica %s stopped while turn %s ran; telling its client", owner, message.request_id)
        del self._entries[message.request_id]
        self._inflight.discard(entry_id)
        await self._conversations.finish(Finish(message.session_key, waiter(entry_id, message.request_id),
                                                "", message.request_id, entry_id))
        await self.publish_outbound(OutboundMessage(
            message.channel, message.chat_id, DIED_MID_TURN, kind="error", request_id=message.request_id,
            error_code=TurnErrorCode.BACKEND_UNAVAILABLE, metadata=message.metadata, reply_to=message.reply_to,
        ))

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def connect(self) -> None:
        await self._create_group()
        await self._beat()

    async def _create_group(self) -> None:
        try:
            with self._link.reaching():
                await self._client.xgroup_create(self._keys.inbound, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def status(self) -> BusStatus:
        pattern = self._keys.replica("*")
        with self._link.reaching():
            keys = [key async for key in self._client.scan_iter(match=pattern, count=100)]
        names = sorted(key.removeprefix(pattern[:-1]) for key in keys)
        return BusStatus("redis", self._link.where, tuple(names))

    async def close(self) -> None:
        """Leave the cluster: no more claims, and the others stop counting this replica as alive."""
        if self._read is not None:
            self._read.cancel()
            await asyncio.gather(self._read, return_exceptions=True)
            self._read = None
        with contextlib.suppress(BackendUnavailable), self._link.reaching():
            await self._client.delete(self._keys.replica(self.replica), self._keys.replies(self.replica))
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"RedisBus({self._link.where!r}, replica={self.replica!r})"
