"""TaskSet: background tasks that are kept (so they are not garbage-collected) and awaited (so errors surface)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, cancel: bool = False) -> None:
        """Wait for every task (tasks started meanwhile included); with `cancel`, cancel them first."""
        while self._tasks:
            if cancel:
                for task in self._tasks:
                    task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A task boundary: the failure is logged with its traceback, not lost.
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
