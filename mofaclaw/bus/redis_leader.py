"""The cluster's one leader (it runs cron and the heartbeat): a lease in Redis that passes on when its holder dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from mofaclaw.bus.redis_keys import LEAD, RENEW, RESIGN, Keys
from mofaclaw.bus.redis_link import Link, Outage, check_cancelled
from mofaclaw.errors import BackendUnavailable

log = logging.getLogger(__name__)


class Leadership:
    """Every `run` on this replica shares one lease (cron and the heartbeat lead together); the
    replica's heartbeat renews it, so a replica that stops renewing loses it within one lease."""

    def __init__(self, client: aioredis.Redis, link: Link, keys: Keys, replica: str, lease: float) -> None:
        self._link = link
        self._keys = keys
        self._replica = replica
        self._lease = lease
        self._poll = max(0.05, min(1.0, lease / 3))
        self._lead = client.register_script(LEAD)
        self._renew = client.register_script(RENEW)
        self._resign = client.register_script(RESIGN)
        self._users = 0
        self._tenure: asyncio.Event | None = None  # set when the lease is lost; None when not held
        self._renewed = 0.0
        self._freed = asyncio.Event()
        self._joining = asyncio.Lock()

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            check_cancelled()
            lost = await self._join()
            task = asyncio.ensure_future(work())
            watch = asyncio.ensure_future(lost.wait())
            try:
                await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    return task.result()
                log.warning("replica %s lost the leader lease; its cron and heartbeat wait to lead again",
                            self._replica)
            finally:
                watch.cancel()
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                await self._leave()

    async def _join(self) -> asyncio.Event:
        async with self._joining:
            outage = Outage("leader lease")
            while self._tenure is None or self._tenure.is_set():
                check_cancelled()
                self._freed.clear()
                try:
                    with self._link.reaching():
                        won = await self._lead(keys=[self._keys.leader], args=[self._replica, self._ms])
                except BackendUnavailable as exc:
                    await outage.failed(exc)
                    continue
                outage.ok()
                if won:
                    log.info("replica %s leads the cluster (cron, heartbeat)", self._replica)
                    self._tenure = asyncio.Event()
                    self._renewed = time.monotonic()
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):  # not wait_for: on 3.11 it can swallow a cancel
                        await self._freed.wait()
            self._users += 1
            return self._tenure

    async def _leave(self) -> None:
        self._users -= 1
        if self._users or self._tenure is None:
            return
        tenure, self._tenure = self._tenure, None
        if not tenure.is_set():
            try:
                with self._link.reaching():
                    await self._resign(keys=[self._keys.leader], args=[self._replica, self._keys.events])
            except BackendUnavailable:
                pass  # it expires by itself within one lease

    def freed(self) -> None:
        """The leader resigned somewhere: try to lead now rather than at the next poll."""
        self._freed.set()

    async def renew(self) -> None:
        tenure = self._tenure
        if tenure is None or tenure.is_set():
            return
        with self._link.reaching():
            ours = await self._renew(keys=[self._keys.leader], args=[self._replica, self._ms])
        if ours:
            self._renewed = time.monotonic()
        else:
            tenure.set()

    def unsure(self) -> None:
        """The heartbeat cannot reach Redis: once the lease may have passed to another replica (2/3 of
        it without a renewal, a margin for clocks and delays), stop leading here."""
        tenure = self._tenure
        if tenure is not None and not tenure.is_set() and time.monotonic() - self._renewed > self._lease * 2 / 3:
            tenure.set()

    @property
    def _ms(self) -> int:
        return max(1, int(self._lease * 1000))
