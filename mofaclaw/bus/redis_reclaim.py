"""Finding the turns a dead replica had claimed: pending entries whose owner stopped beating, taken over by XCLAIM."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis

from mofaclaw.bus.redis_keys import GROUP, Keys
from mofaclaw.bus.redis_link import Link, check_cancelled

PAGE = 100


class Orphans:
    def __init__(self, client: aioredis.Redis, link: Link, keys: Keys, replica: str, lease: float) -> None:
        self._client = client
        self._link = link
        self._keys = keys
        self._replica = replica
        self._lease_ms = max(1, int(lease * 1000))

    async def claim(self, in_hand: Callable[[str], bool]) -> AsyncIterator[tuple[str, dict[str, str] | None, str]]:
        """Claim for this replica every entry idle for a lease whose owner is dead, or is this replica
        but no longer `in_hand` (its task was lost); yields (entry id, fields, previous owner). The
        idle time is checked again by XCLAIM itself, so two replicas never take the same entry."""
        after = "-"
        while True:
            check_cancelled()
            with self._link.reaching():
                pending = await self._client.xpending_range(self._keys.inbound, GROUP, after, "+", PAGE,
                                                            idle=self._lease_ms)
            if not pending:
                return
            alive = await self._alive({p["consumer"] for p in pending} - {self._replica})
            for entry in pending:
                entry_id, owner = entry["message_id"], entry["consumer"]
                if owner in alive or (owner == self._replica and in_hand(entry_id)):
                    continue
                with self._link.reaching():
                    claimed = await self._client.xclaim(self._keys.inbound, GROUP, self._replica,
                                                        self._lease_ms, [entry_id])
                for claimed_id, fields in claimed:
                    yield claimed_id, fields, owner
            if len(pending) < PAGE:
                return
            after = f"({pending[-1]['message_id']}"

    async def forget_dead_consumers(self) -> None:
        """Drop the group's consumers of replicas that are gone and hold nothing, so restarts leave no trail."""
        with self._link.reaching():
            consumers = await self._client.xinfo_consumers(self._keys.inbound, GROUP)
        idle = {c["name"] for c in consumers
                if not c["pending"] and c["idle"] > self._lease_ms and c["name"] != self._replica}
        for name in idle - await self._alive(idle):
            with self._link.reaching():
                await self._client.xgroup_delconsumer(self._keys.inbound, GROUP, name)

    async def _alive(self, replicas: set[str]) -> set[str]:
        names = sorted(replicas)
        if not names:
            return set()
        with self._link.reaching():
            beats = await self._client.mget([self._keys.replica(name) for name in names])
        return {name for name, beat in zip(names, beats, strict=True) if beat is not None}
