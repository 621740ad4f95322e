"""Cron jobs and where they live: the CronJobStore protocol, and the jobs file shared by the CLI, the cron tool
and a running gateway without losing updates."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from mofaclaw.errors import MofaclawError
from mofaclaw.services.schedule import Schedule, schedule_from_dict, schedule_to_dict

JobStatus = Literal["ok", "error", "missed"]
FORMAT_VERSION = 1


class CronStoreError(MofaclawError):
    """The jobs file cannot be read as written."""


@dataclass(frozen=True, slots=True)
class CronJob:
    id: str
    name: str
    message: str  # what the agent is asked to do when the job runs
    schedule: Schedule
    created_at: datetime
    next_run: datetime | None  # None: nothing left to run
    enabled: bool = True
    deliver: bool = False  # send the answer to `channel`/`to`
    channel: str = ""
    to: str = ""
    last_run: datetime | None = None
    last_status: JobStatus | None = None
    last_error: str | None = None

    @property
    def one_time(self) -> bool:
        return self.schedule.kind == "at"


def new_job(name: str, message: str, schedule: Schedule, now: datetime, *, channel: str = "", to: str = "") -> CronJob:
    """A job that starts now; it delivers its answers when given a channel and a chat."""
    return CronJob(
        id=uuid.uuid4().hex[:8],
        name=name,
        message=message,
        schedule=schedule,
        created_at=now,
        next_run=schedule.next_after(now),
        deliver=bool(channel and to),
        channel=channel,
        to=to,
    )


class CronJobStore(Protocol):
    """Where the jobs live. The methods block (file or database I/O): async code calls them through
    asyncio.to_thread. `changes()` yields whenever the jobs may have changed, whoever changed them."""

    def jobs(self) -> list[CronJob]: ...

    def get(self, job_id: str) -> CronJob | None: ...

    def add(self, job: CronJob) -> CronJob: ...

    def remove(self, job_id: str) -> bool: ...

    def update(self, job_id: str, change: Callable[[CronJob], CronJob | None]) -> CronJob | None:
        """Apply `change` to the job as it is now in the store (None from `change` deletes it), atomically.
        Returns the job before the change, or None when there is no such job."""
        ...

    def set_enabled(self, job_id: str, enabled: bool, now: datetime) -> CronJob | None:
        """Enabling re-arms the job from `now`; returns the job as changed."""
        ...

    def changes(self) -> AsyncIterator[None]: ...


class JobsOverUpdate:
    """get, remove and set_enabled for a store that has jobs() and an atomic update()."""

    def jobs(self) -> list[CronJob]:
        raise NotImplementedError

    def update(self, job_id: str, change: Callable[[CronJob], CronJob | None]) -> CronJob | None:
        raise NotImplementedError

    def get(self, job_id: str) -> CronJob | None:
        return next((j for j in self.jobs() if j.id == job_id), None)

    def remove(self, job_id: str) -> bool:
        return self.update(job_id, lambda _: None) is not None

    def set_enabled(self, job_id: str, enabled: bool, now: datetime) -> CronJob | None:
        changed: list[CronJob] = []

        def change(job: CronJob) -> CronJob:
            new = (
                replace(job, enabled=True, next_run=job.schedule.next_after(now))
                if enabled
                else replace(job, enabled=False)
            )
            changed.append(new)
            return new

        self.update(job_id, change)
        return changed[0] if changed else None


class CronStore(JobsOverUpdate):
    """Jobs in one JSON file. Writers take an exclusive lock around read-modify-write and replace
    the file atomically, so readers never need the lock and never see half a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def jobs(self) -> list[CronJob]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            return [job_from_dict(d) for d in json.loads(text)["jobs"]]
        except (ValueError, KeyError, TypeError, MofaclawError) as exc:
            raise CronStoreError(f"the cron jobs file {self.path} is not valid: {exc}") from None

    def add(self, job: CronJob) -> CronJob:
        with self._transaction() as jobs:
            jobs.append(job)
        return job

    def update(self, job_id: str, change: Callable[[CronJob], CronJob | None]) -> CronJob | None:
        with self._transaction() as jobs:
            for i, job in enumerate(jobs):
                if job.id == job_id:
                    changed = change(job)
                    if changed is None:
                        del jobs[i]
                    else:
                        jobs[i] = changed
                    return job
        return None

    async def changes(self) -> AsyncIterator[None]:
        """Whenever the file is rewritten, by this process or another (the CLI). Raises when the file
        cannot be watched (e.g. out of inotify watches)."""
        from watchfiles import awatch

        _private_dirs(self.path.parent)
        name = self.path.name
        async for _ in awatch(
            self.path.parent,
            watch_filter=lambda _, path: Path(path).name == name,
            debounce=100,
            recursive=False,
        ):
            yield

    @contextmanager
    def _transaction(self) -> Iterator[list[CronJob]]:
        _private_dirs(self.path.parent)
        # 0600 like the jobs file (mkstemp's mode, kept by the rename): jobs hold what the user asked for.
        lock_fd = os.open(self._lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        with os.fdopen(lock_fd, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            jobs = self.jobs()
            yield jobs
            self._write(jobs)

    def _write(self, jobs: list[CronJob]) -> None:
        data = {"version": FORMAT_VERSION, "jobs": [job_to_dict(j) for j in jobs]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".jobs-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _private_dirs(path: Path) -> None:
    """`path` and its missing parents (the data dir, on a first `cron add`) created 0700."""
    for directory in reversed([p for p in (path, *path.parents) if not p.exists()]):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode went through the umask


def _time(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def job_to_dict(job: CronJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "message": job.message,
        "schedule": schedule_to_dict(job.schedule),
        "enabled": job.enabled,
        "deliver": job.deliver,
        "channel": job.channel,
        "to": job.to,
        "created_at": _time(job.created_at),
        "next_run": _time(job.next_run),
        "last_run": _time(job.last_run),
        "last_status": job.last_status,
        "last_error": job.last_error,
    }


def job_from_dict(data: dict[str, Any]) -> CronJob:
    return CronJob(
        id=str(data["id"]),
        name=str(data.get("name", "")),
        message=str(data["message"]),
        schedule=schedule_from_dict(data["schedule"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        next_run=_parse_time(data.get("next_run")),
        enabled=bool(data.get("enabled", True)),
        deliver=bool(data.get("deliver", False)),
        channel=str(data.get("channel", "")),
        to=str(data.get("to", "")),
        last_run=_parse_time(data.get("last_run")),
        last_status=data.get("last_status"),
        last_error=data.get("last_error"),
    )
