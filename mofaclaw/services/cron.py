"""The cron timer: sleeps until the earliest due job, runs it as an agent turn, records it, re-arms."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.errors import MofaclawError, TurnErrorCode, turn_error_code
from mofaclaw.services.clock import Clock, SystemClock
from mofaclaw.services.cron_store import CronJob, CronJobStore, JobStatus
from mofaclaw.services.schedule import format_time
from mofaclaw.services.turns import TurnFn

log = logging.getLogger(__name__)

NEVER = datetime.max.replace(tzinfo=UTC)
# How soon to look at the jobs again when they could not be read, or when their changes cannot be
# watched (no inotify): then a job added from outside is seen within this time.
RECHECK = timedelta(seconds=60)


def job_message(job: CronJob) -> InboundMessage:
    """The turn a job runs: its message, in its own session."""
    return InboundMessage(
        channel="cron",
        sender_id="cron",
        chat_id=job.id,
        content=job.message,
        session_key_override=f"cron:{job.id}",
    )


class CronService:
    """Runs the jobs of a CronJobStore. Jobs run as tasks of their own, so a slow turn delays no other
    job; one job never overlaps itself. `wake()` makes the timer re-read the store at once (the store's
    changes() does the same for changes made by another process)."""

    def __init__(
        self,
        store: CronJobStore,
        turn: TurnFn,
        bus: MessageBus,
        *,
        grace_seconds: float = 300.0,
        clock: Clock | None = None,
        watch: bool = True,
    ) -> None:
        self._store = store
        self._turn = turn
        self._bus = bus
        self._grace = timedelta(seconds=grace_seconds)
        self._clock = clock or SystemClock()
        self._watch = watch
        self._watch_failed = False
        self._wakeup = asyncio.Event()
        self._running: set[str] = set()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as jobs:
            if self._watch:
                jobs.create_task(self._watch_store())
                await asyncio.sleep(0)  # let the watcher start before the first read, so no change slips by
            while True:
                self._wakeup.clear()
                try:
                    wake_at = await self._run_due(jobs)
                except (MofaclawError, OSError) as exc:
                    log.error("cron: %s; trying again when the jobs change", exc)
                    wake_at = self._clock.now() + RECHECK
                if self._watch_failed:
                    wake_at = min(wake_at, self._clock.now() + RECHECK)
                await self._sleep_until(wake_at)

    async def _run_due(self, tasks: asyncio.TaskGroup) -> datetime:
        """Start every due job; returns when the timer should look again."""
        now = self._clock.now()
        jobs = await asyncio.to_thread(self._store.jobs)
        if self._wakeup.is_set():
            # A job finished (or the jobs changed) while they were read: this copy may be stale, and
            # a stale copy would run a job that just ran again.
            return now
        wake_at = NEVER
        for job in jobs:
            if not job.enabled or job.next_run is None or job.id in self._running:
                continue  # a running job re-arms when it finishes, and wakes the timer then
            if job.next_run > now:
                wake_at = min(wake_at, job.next_run)
            elif now - job.next_run > self._grace:
                # Down (or asleep) past the grace period: running it now would surprise more than help.
                log.warning("cron job %s (%s) missed its run at %s", job.id, job.name, job.next_run)
                await asyncio.to_thread(self._store.update, job.id, lambda j: _missed(j, now))
                return now  # the jobs changed while we waited: read them again
            else:
                self._running.add(job.id)
                tasks.create_task(self._run_job(job))
        return wake_at

    async def _run_job(self, job: CronJob) -> None:
        started = self._clock.now()
        error: str | None = None
        code = TurnErrorCode.INTERNAL_ERROR
        answer = ""
        try:
            answer = await self._turn(job_message(job))
        except MofaclawError as exc:
            error, code = str(exc) or type(exc).__name__, turn_error_code(exc)
        except Exception as exc:  # a failing job must not stop the timer or the other jobs
            log.exception("cron job %s crashed", job.id)
            error = f"{type(exc).__name__}: {exc}"
        log.info("cron job %s (%s) ran: %s", job.id, job.name, error or "ok")
        try:
            finished = self._clock.now()
            await asyncio.to_thread(self._store.update, job.id, lambda j: _finished(j, started, finished, error))
        except Exception:  # task boundary: the timer and the other jobs go on
            log.exception("cron: could not record the run of job %s", job.id)
        finally:
            self._running.discard(job.id)
            self._wakeup.set()
        # Delivered after the run is recorded, so whoever reads the answer sees the job's new state.
        if job.deliver and job.channel and job.to:
            try:
                await self._deliver(job, answer, error, code)
            except Exception:  # task boundary
                log.exception("cron: could not deliver the answer of job %s", job.id)

    async def _deliver(self, job: CronJob, answer: str, error: str | None, code: TurnErrorCode) -> None:
        if error is None:
            message = OutboundMessage(channel=job.channel, chat_id=job.to, content=answer)
        else:
            message = OutboundMessage(
                channel=job.channel,
                chat_id=job.to,
                content=f"Scheduled job '{job.name}' failed: {error}",
                kind="error",
                error_code=code,
            )
        await self._bus.publish_outbound(message)

    async def _sleep_until(self, when: datetime) -> None:
        sleeping = [
            asyncio.create_task(self._clock.sleep_until(when)),
            asyncio.create_task(self._wakeup.wait()),
        ]
        try:
            await asyncio.wait(sleeping, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in sleeping:
                task.cancel()
            await asyncio.gather(*sleeping, return_exceptions=True)

    async def _watch_store(self) -> None:
        """Wake the timer whenever the jobs change, from this process or another (the CLI, a replica)."""
        try:
            async for _ in self._store.changes():
                self._wakeup.set()
        except Exception as exc:  # e.g. out of inotify watches: the timer goes on, looking every RECHECK
            log.warning("cron: cannot watch the jobs for changes (%s); looking at them every %ds instead",
                        exc, RECHECK.seconds)
            self._watch_failed = True
            self._wakeup.set()


def record_run(job: CronJob, started: datetime, error: str | None) -> CronJob:
    """The job with its last run noted; its schedule is the caller's business."""
    status: JobStatus = "error" if error else "ok"
    return replace(job, last_run=started, last_status=status, last_error=error)


def _finished(job: CronJob, started: datetime, finished: datetime, error: str | None) -> CronJob | None:
    """The job after a run. A one-time job that ran is removed, unless it failed: then it is kept,
    disabled, so the failure stays visible in `mofaclaw cron list --all`."""
    if job.one_time and error is None:
        return None
    done = record_run(job, started, error)
    if job.one_time:
        return replace(done, enabled=False, next_run=None)
    # Re-armed from the end of the run: occurrences that fell inside a long run are skipped, not piled up.
    return replace(done, next_run=job.schedule.next_after(finished))


def _missed(job: CronJob, now: datetime) -> CronJob:
    due = format_time(job.next_run) if job.next_run else "earlier"
    missed = replace(job, last_status="missed", last_error=f"missed the run due {due}")
    if job.one_time:
        return replace(missed, enabled=False, next_run=None)
    return replace(missed, next_run=job.schedule.next_after(now))
