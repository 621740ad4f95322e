"""The cron tool: lets the agent schedule work for later ("remind me at 9", "every morning ...")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mofaclaw.agent.tools.base import ToolContext
from mofaclaw.errors import ToolError
from mofaclaw.services.clock import Clock, SystemClock
from mofaclaw.services.cron_store import CronJob, CronJobStore, CronStoreError, new_job
from mofaclaw.services.schedule import ScheduleError, format_time, parse_schedule

# Turns that no user is waiting on: a job created there has no chat to deliver to.
INTERNAL_CHANNELS = frozenset({"cron", "heartbeat"})
NAME_LENGTH = 40


class CronTool:
    name = "cron"
    description = (
        "Schedule work for later. action 'add' needs `message` (what you will be asked to do when the job "
        "runs, written as an instruction to yourself, e.g. 'Remind the user to call Alice') and exactly one "
        "of `at` (one time, ISO date-time such as 2026-03-08T09:00), `every_seconds` (repeat) or "
        "`cron_expr` (5-field cron expression, e.g. '0 9 * * 1-5'), optionally with `tz` (IANA timezone). "
        "The answer of each run is sent to this chat. 'list' shows the jobs; 'remove' deletes `job_id`."
    )
    parameters = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["add", "list", "remove"]},
            "message": {"type": "string", "description": "For add: the instruction to run at the scheduled time."},
            "at": {"type": "string", "description": "For add, one time: an ISO date-time."},
            "every_seconds": {"type": "integer", "minimum": 1, "description": "For add: repeat interval."},
            "cron_expr": {"type": "string", "description": "For add: a 5-field cron expression."},
            "tz": {"type": "string", "description": "IANA timezone for `at` or `cron_expr`."},
            "job_id": {"type": "string", "description": "For remove: the job's id (see list)."},
        },
        "required": ["action"],
        "additionalProperties": False,
    }

    def __init__(
        self,
        store: CronJobStore,
        wake: Callable[[], None] | None = None,
        *,
        default_tz: str = "",
        clock: Clock | None = None,
    ) -> None:
        """`wake` tells a running cron service to look at the jobs again; `default_tz` is the zone of
        times written without one (the zone the agent is told it lives in), else the machine's."""
        self._store = store
        self._wake = wake
        self._default_tz = default_tz
        self._tz = ZoneInfo(default_tz) if default_tz else None
        self._clock = clock or SystemClock()

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        action = args["action"]
        try:
            if action == "add":
                return await self._add(args, ctx)
            if action == "list":
                return self._list(await asyncio.to_thread(self._store.jobs))
            return await self._remove(args.get("job_id") or "")
        except CronStoreError as exc:  # an unreadable jobs file: the model can tell the user
            raise ToolError(str(exc)) from None

    async def _add(self, args: dict[str, Any], ctx: ToolContext) -> str:
        message = (args.get("message") or "").strip()
        if not message:
            raise ToolError("'message' is required to add a job: what should be done when it runs")
        tz = args.get("tz") or None
        if tz is None and not args.get("every_seconds"):
            tz = self._default_tz or None  # a time written without a zone is in the agent's zone
        try:
            schedule = parse_schedule(
                now=self._clock.now(),
                at=args.get("at"),
                every_seconds=args.get("every_seconds"),
                cron_expr=args.get("cron_expr"),
                tz=tz,
            )
        except ScheduleError as exc:
            raise ToolError(str(exc)) from None
        internal = ctx.channel in INTERNAL_CHANNELS
        job = new_job(
            _name(message),
            message,
            schedule,
            self._clock.now(),
            channel="" if internal else ctx.channel,
            to="" if internal else ctx.chat_id,
        )
        await asyncio.to_thread(self._store.add, job)
        if self._wake is not None:
            self._wake()
        return f"Scheduled job {job.id} ({schedule.describe(self._tz)}); next run {self._time(job.next_run)}."

    async def _remove(self, job_id: str) -> str:
        if not job_id:
            raise ToolError("'job_id' is required to remove a job (see action 'list')")
        if not await asyncio.to_thread(self._store.remove, job_id):
            raise ToolError(f"no job with id '{job_id}' (see action 'list')")
        if self._wake is not None:
            self._wake()
        return f"Removed job {job_id}."

    def _list(self, jobs: list[CronJob]) -> str:
        if not jobs:
            return "No scheduled jobs."
        return "\n".join(self._line(job) for job in jobs)

    def _line(self, job: CronJob) -> str:
        state = f"next run {self._time(job.next_run)}" if job.enabled else "disabled"
        last = f"; last run {job.last_status}" + (f" ({job.last_error})" if job.last_error else "")
        return f"- {job.id} '{job.name}': {job.schedule.describe(self._tz)}; {state}{last if job.last_status else ''}"

    def _time(self, t: datetime | None) -> str:
        return format_time(t, self._tz) if t is not None else "none"


def _name(message: str) -> str:
    first_line = message.splitlines()[0]
    return first_line if len(first_line) <= NAME_LENGTH else first_line[: NAME_LENGTH - 1] + "…"
