"""The time services read and sleep on, injected so tests can move it without waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

# Sleep in naps of at most this long and re-read the wall clock: the event loop's monotonic clock
# stops while a laptop is suspended, so one long sleep would wake up late by the suspended time.
MAX_NAP_SECONDS = 60.0


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while (remaining := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, MAX_NAP_SECONDS))


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
