"""Conversation leases across replicas: one turn of a conversation at a time, first come first served, and
the end of a turn (acknowledged, so it never runs again) even when Redis was away when it ended."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import redis.asyncio as aioredis

from mofaclaw.bus.events import InboundMessage
from mofaclaw.bus.redis_keys import ACQUIRE, FINISH, GROUP, QUEUE_ASK, RENEW, STARTED_TTL_MS, Keys
from mofaclaw.bus.redis_link import Link, check_cancelled
from mofaclaw.errors import BackendUnavailable

log = logging.getLogger(__name__)


def waiter(entry_id: str, request_id: str) -> str:
    """A stream entry's member of its conversation queue (the same text PUBLISH_TURN writes)."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms:0>15}-{seq:0>10}|s|{entry_id}|{request_id}"


@dataclass(frozen=True, slots=True)
class Finish:
    """What ending one turn needs: free its conversation, and acknowledge its entry if it came from the stream."""

    session_key: str
    member: str
    token: str
    request_id: str
    entry_id: str  # "" for a turn of agent.ask


class Conversations:
    def __init__(self, client: aioredis.Redis, link: Link, keys: Keys, replica: str, lease: float) -> None:
        self._link = link
        self._keys = keys
        self._replica = replica
        self._lease_ms = max(1, int(lease * 1000))
        # Waiting for a conversation wakes on its release (pub/sub); the poll catches a holder that died.
        self._poll = max(0.05, min(1.0, lease / 3))
        self._acquire = client.register_script(ACQUIRE)
        self._finish = client.register_script(FINISH)
        self._queue_ask = client.register_script(QUEUE_ASK)
        self._renew = client.register_script(RENEW)
        self._client = client
        self.held: dict[str, str] = {}  # lease key -> our token, renewed by the heartbeat
        self.unfinished: dict[str, Finish] = {}  # by token: ends Redis missed, retried by the heartbeat
        self._waiting: dict[str, set[asyncio.Event]] = {}

    @asynccontextmanager
    async def hold(self, message: InboundMessage, entry_id: str | None) -> AsyncIterator[bool]:
        """The turn of `message` in its conversation (see MessageBus.turn); `entry_id` when it came from the stream."""
        session = message.session_key
        token = f"{self._replica}/{entry_id or uuid.uuid4().hex}"
        rid = message.request_id if entry_id else ""
        if entry_id:
            member = waiter(entry_id, rid)
        else:
            with self._link.reaching():
                member = await self._queue_ask(keys=[self._keys.queue(session)],
                                               args=[self._replica, uuid.uuid4().hex])
        done = Finish(session, member, token, rid, entry_id or "")
        try:
            state = await self._wait_for_turn(done)
        except asyncio.CancelledError:
            # Cancelled while waiting: a cancelled request ends here; on a shutdown the entry stays
            # pending, so another replica reclaims it and the conversation keeps its order.
            if not entry_id or await self._was_cancelled(rid):
                await self.finish(done)
            raise
        except BackendUnavailable:
            # The client is told the turn failed, so it must never run later: end it once Redis is back.
            self.unfinished[token] = done
            raise
        if state == "lost":
            raise BackendUnavailable("Redis lost this turn before it started (it restarted without its data); "
                                     "send it again.")
        lease_key = self._keys.lease(session)
        if state == "go":
            self.held[lease_key] = token
        elif state == "started":
            log.warning("turn %s was already started by a replica that stopped; not run again", rid)
        elif state == "moved":
            log.warning("turn %s was reclaimed by another replica while it waited here", rid)
        try:
            yield state == "go"
        finally:
            if self.held.get(lease_key) == token:
                del self.held[lease_key]
            if state != "moved":  # a moved entry is the other replica's to end
                await self.finish(done)

    async def _wait_for_turn(self, turn: Finish) -> str:
        keys = [self._keys.lease(turn.session_key), self._keys.queue(turn.session_key), self._keys.inbound]
        args = [turn.member, turn.token, self._lease_ms, self._keys.prefix, turn.request_id, STARTED_TTL_MS,
                GROUP, turn.entry_id, self._replica]
        while True:
            check_cancelled()
            woken = asyncio.Event()  # registered before asking, so a release in between is not missed
            waiting = self._waiting.setdefault(turn.session_key, set())
            waiting.add(woken)
            try:
                with self._link.reaching():
                    state = await self._acquire(keys=keys, args=args)
                if state != "wait":
                    return str(state)
                with suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):  # not wait_for: on 3.11 it can swallow a cancel
                        await woken.wait()
            finally:
                waiting.discard(woken)
                if not waiting:
                    self._waiting.pop(turn.session_key, None)

    async def _was_cancelled(self, request_id: str) -> bool:
        try:
            with self._link.reaching():
                return bool(await self._client.exists(self._keys.cancelled(request_id)))
        except BackendUnavailable:
            return False  # left pending: whoever reclaims it finds the cancel then

    async def finish(self, turn: Finish) -> bool:
        """End `turn` in Redis; when Redis cannot be reached, keep it for `retry_unfinished`."""
        try:
            await self._end(turn)
        except BackendUnavailable as exc:
            log.warning("could not end turn %s in Redis (%s); will retry", turn.request_id or turn.token, exc)
            self.unfinished[turn.token] = turn
            return False
        return True

    async def retry_unfinished(self) -> None:
        for turn in list(self.unfinished.values()):
            await self._end(turn)

    async def _end(self, turn: Finish) -> None:
        with self._link.reaching():
            await self._finish(
                keys=[self._keys.lease(turn.session_key), self._keys.queue(turn.session_key), self._keys.inbound],
                args=[turn.member, turn.token, self._keys.prefix, turn.request_id, turn.entry_id, GROUP,
                      self._keys.events, turn.session_key],
            )
        self.unfinished.pop(turn.token, None)
        self.released(turn.session_key)

    def released(self, session_key: str) -> None:
        """A turn of `session_key` ended somewhere: wake whoever waits here for that conversation."""
        for woken in self._waiting.get(session_key, ()):
            woken.set()

    def ending(self, entry_id: str) -> bool:
        """Whether an entry's end is still to be written (so it is not reclaimed meanwhile)."""
        return any(turn.entry_id == entry_id for turn in self.unfinished.values())

    async def renew(self) -> None:
        """Extend every lease held here; one that was lost (this replica looked dead) is reported and dropped."""
        held = list(self.held.items())
        if not held:
            return
        with self._link.reaching():
            async with self._client.pipeline(transaction=False) as pipe:
                for key, token in held:
                    await self._renew(keys=[key], args=[token, self._lease_ms], client=pipe)
                results = await pipe.execute()
        for (key, token), ok in zip(held, results, strict=True):
            if not ok and self.held.get(key) == token:
                log.warning("a conversation lease (%s) expired while its turn ran here", key)
                del self.held[key]
