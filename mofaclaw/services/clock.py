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
