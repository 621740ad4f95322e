"""A clock for the scheduling tests: time moves when the test says so, not with the wall clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime


class ManualClock:
    """A clock for tests: a sleep that ends by `until` jumps time to its end at once; a sleep past
    `until` waits, with time standing still and `parked` set, until the test moves `until` on with
    `run_until`. Move it one step at a time when jobs run concurrently with the sleeper."""

    def __init__(self, start: datetime, until: datetime | None = None) -> None:
        self._now = start.astimezone(UTC)
        self._until = until if until is not None else self._now
        self._moved = asyncio.Event()
        self._parked_sleepers = 0
        self.parked = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def run_until(self, until: datetime) -> None:
        self._until = until
        self.parked.clear()
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep_until(self, when: datetime) -> None:
        while when > self._until:
            moved = self._moved
            self._parked_sleepers += 1
            self.parked.set()
            try:
                await moved.wait()
            finally:
                self._parked_sleepers -= 1
                if self._parked_sleepers == 0:
                    self.parked.clear()
        self._now = max(self._now, when)
        await asyncio.sleep(0)  # a sleep always yields, as a real one would
