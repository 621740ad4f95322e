"""Cron jobs in PostgreSQL, so every replica (and `mofaclaw cron` with any replica's config) shares one set of jobs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from mofaclaw.errors import BackendUnavailable, MofaclawError
from mofaclaw.services.cron_store import CronJob, CronStoreError, JobsOverUpdate, job_from_dict, job_to_dict
from mofaclaw.session import pg

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "mofaclaw_cron"  # NOTIFY'd by every write, in its transaction: listeners hear of it once it commits
# A LISTEN connection that went quiet may have died without a word (a network gone): checked this often.
LIVENESS_CHECK = 30.0
RECONNECT_BACKOFF = (0.5, 1.0, 2.0, 5.0)  # seconds, then the last one again


async def _m1_jobs(db: asyncpg.Connection) -> None:
    # `job` is the JSON the jobs file holds for it; `seq` keeps the order jobs were added in, as the file does.
    await db.execute("CREATE TABLE cron_jobs (id TEXT PRIMARY KEY, "
                     "seq BIGINT GENERATED ALWAYS AS IDENTITY, job TEXT NOT NULL)")


MIGRATIONS: list[pg.Migration] = [_m1_jobs]


class PostgresCronStore(JobsOverUpdate):
    """The CronJobStore of a cluster. Its methods block like the file store's: each runs on a short
    connection of its own in a private event loop (asyncio.run), so it serves the CLI (no loop) and
    asyncio.to_thread callers alike without a pool or a thread to look after. Cron writes are rare
    (a command, a job's run), so a connection each costs nothing that matters."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._migrated = False

    def jobs(self) -> list[CronJob]:
        rows = self._run(lambda db: db.fetch("SELECT id, job FROM cron_jobs ORDER BY seq"))
        return [_job(row["id"], row["job"]) for row in rows]

    def get(self, job_id: str) -> CronJob | None:
        text = self._run(lambda db: db.fetchval("SELECT job FROM cron_jobs WHERE id = $1", job_id))
        return _job(job_id, text) if text is not None else None

    def add(self, job: CronJob) -> CronJob:
        async def insert(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await db.execute("INSERT INTO cron_jobs(id, job) VALUES ($1, $2)", job.id, json.dumps(job_to_dict(job)))
                await _notify(db)

        self._run(insert)
        return job

    def update(self, job_id: str, change: Callable[[CronJob], CronJob | None]) -> CronJob | None:
        async def read_modify_write(db: asyncpg.Connection) -> CronJob | None:
            async with db.transaction():
                # The row stays locked until commit: a second updater waits and then sees this change.
                text = await db.fetchval("SELECT job FROM cron_jobs WHERE id = $1 FOR UPDATE", job_id)
                if text is None:
                    return None
                job = _job(job_id, text)
                changed = change(job)
                if changed is None:
                    await db.execute("DELETE FROM cron_jobs WHERE id = $1", job_id)
                else:
                    await db.execute("UPDATE cron_jobs SET job = $2 WHERE id = $1", job_id,
                                     json.dumps(job_to_dict(changed)))
                await _notify(db)
                return job

        return self._run(read_modify_write)

    async def changes(self) -> AsyncIterator[None]:
        """LISTEN on the jobs' channel. Once at the start and after every reconnection (what changed
        while nobody listened is unknown), then on every committed write from any process."""
        attempt = 0
        while True:
            try:
                db = await pg.connect(self._dsn)
            except BackendUnavailable as exc:
                if attempt == 0:
                    log.warning("cron: %s; listening for job changes again when it is back", exc)
                await asyncio.sleep(RECONNECT_BACKOFF[min(attempt, len(RECONNECT_BACKOFF) - 1)])
                attempt += 1
                continue
            heard = asyncio.Event()  # a NOTIFY, or the connection's end
            try:
                await db.add_listener(CHANNEL, _setter(heard))
                db.add_termination_listener(_setter(heard))
                if attempt:
                    log.info("cron: listening for job changes again")
                attempt = 0
                yield
                while True:
                    try:
                        await asyncio.wait_for(heard.wait(), LIVENESS_CHECK)
                    except TimeoutError:
                        await db.fetchval("SELECT 1")  # raises if the connection died without a word
                        continue
                    if db.is_closed():
                        break
                    heard.clear()
                    yield
                log.warning("cron: lost the connection to PostgreSQL at %s; listening again", pg.describe(self._dsn))
            except Exception as exc:
                if not pg.is_unreachable(exc):
                    raise
                log.warning("cron: %s; listening for job changes again", pg.unavailable(self._dsn, exc))
            finally:
                db.terminate()  # no goodbye needed; also right when the generator is closed mid-wait
            attempt = 1
            await asyncio.sleep(RECONNECT_BACKOFF[0])

    def _run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._on_connection(work))
        raise RuntimeError("PostgresCronStore blocks: from async code, call it through asyncio.to_thread")

    async def _on_connection(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        db = await pg.connect(self._dsn)
        try:
            async with pg.translated(self._dsn):
                if not self._migrated:
                    await pg.migrate(db, self._dsn, "cron", MIGRATIONS)
                    self._migrated = True
                return await work(db)
        finally:
            try:
                await asyncio.wait_for(db.close(), pg.CONNECT_TIMEOUT)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                db.terminate()  # the server went away meanwhile: nothing to say goodbye to


def _setter(event: asyncio.Event) -> Callable[..., None]:
    return lambda *_: event.set()


async def _notify(db: asyncpg.Connection) -> None:
    await db.execute("SELECT pg_notify($1, '')", CHANNEL)


def _job(job_id: str, text: str) -> CronJob:
    try:
        return job_from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError, MofaclawError) as exc:
        raise CronStoreError(f"cron job {job_id} in PostgreSQL is not valid: {exc}") from None
