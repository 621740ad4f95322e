"""`mofaclaw cron`: list, add, remove, enable and run scheduled jobs (a running gateway sees changes at once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from mofaclaw.cli.common import ConfigOption, VerboseOption, command_group, console, fail, load, setup_logging

if TYPE_CHECKING:
    from mofaclaw.bus.events import InboundMessage
    from mofaclaw.config.models import Config
    from mofaclaw.services.cron_store import CronJob, CronJobStore

# Heavy modules (croniter, the runtime) are imported inside the commands: `mofaclaw --help` stays fast.

T = TypeVar("T")
JobIdArgument = Annotated[str, typer.Argument(help="The job's id (see: mofaclaw cron list --all).")]

cron_app = command_group("Scheduled jobs: list, add, remove, enable, run now.")


def _store(cfg: Config) -> CronJobStore:
    """The jobs file, or the cluster's PostgreSQL when [session] names it."""
    from mofaclaw.backends import make_cron_store
    from mofaclaw.config import paths

    return _guarded(lambda: make_cron_store(cfg.session, paths.mofaclaw_home()))


def _guarded(work: Callable[[], T]) -> T:
    """`work` on the jobs file, with an unreadable file reported in one line."""
    from mofaclaw.errors import MofaclawError

    try:
        return work()
    except MofaclawError as exc:
        fail(str(exc))


def _zone_name(config: Config) -> str | None:
    """Times written without a zone are read, and shown, in the agent's timezone, else the machine's."""
    return config.agents.defaults.timezone or None


def _zone(config: Config) -> tzinfo | None:
    from mofaclaw.services.schedule import ScheduleError, zone

    name = _zone_name(config)
    try:
        return zone(name) if name else None
    except ScheduleError as exc:
        fail(f"agents.defaults.timezone: {exc}", 2)


def _when(t: datetime | None, tz: tzinfo | None) -> str:
    from mofaclaw.services.schedule import format_time

    return format_time(t, tz) if t is not None else "-"


def _no_such_job(job_id: str) -> NoReturn:
    fail(f"no cron job with id '{job_id}' (see: mofaclaw cron list --all)")


def _last_status(job: CronJob, tz: tzinfo | None) -> str:
    if not job.last_status:
        return "-"
    text = f"{job.last_status} {_when(job.last_run, tz)}" if job.last_run else job.last_status
    return f"{text}: {job.last_error}" if job.last_error else text


@cron_app.command("list")
def list_jobs(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include disabled jobs.")] = False,
    config: ConfigOption = None,
) -> None:
    """The scheduled jobs: id, name, schedule, next run, last status."""
    from rich.table import Table

    cfg, _ = load(config)
    tz = _zone(cfg)
    jobs = _guarded(_store(cfg).jobs)
    shown = [j for j in jobs if all_ or j.enabled]
    if not shown:
        hidden = len(jobs) - len(shown)
        console().print("No scheduled jobs." + (f" ({hidden} disabled: mofaclaw cron list --all)" if hidden else ""))
        return
    table = Table("ID", "Name", "Schedule", "Next run", "Last status")
    for job in shown:
        next_run = _when(job.next_run, tz) if job.enabled else "disabled"
        table.add_row(job.id, job.name, job.schedule.describe(tz), next_run, _last_status(job, tz))
    console().print(table)


@cron_app.command("add")
def add(
    name: Annotated[str, typer.Option("--name", "-n", help="A short name to recognise the job by.")],
    message: Annotated[str, typer.Option("--message", "-m", help="What the agent is asked to do when it runs.")],
    at: Annotated[str | None, typer.Option("--at", help="Run once at this ISO date-time.")] = None,
    every: Annotated[str | None, typer.Option("--every", help="Repeat: seconds, or 15m, 2h, 1d.")] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="Cron expression, e.g. '0 9 * * 1-5'.")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="IANA timezone for --at or --cron.")] = None,
    deliver: Annotated[bool, typer.Option("--deliver", help="Send each answer to --channel/--to.")] = False,
    channel: Annotated[str, typer.Option("--channel", help="Channel to deliver to (e.g. telegram).")] = "",
    to: Annotated[str, typer.Option("--to", help="Chat id on that channel.")] = "",
    config: ConfigOption = None,
) -> None:
    """Schedule a job: exactly one of --at, --every, --cron."""
    from mofaclaw.services.cron_store import new_job
    from mofaclaw.services.schedule import ScheduleError, parse_schedule, parse_seconds

    cfg, _ = load(config)
    if (deliver or channel or to) and not (channel and to):
        fail("delivering answers needs both --channel and --to", 2)
    if not message.strip():
        fail("--message is empty: say what the agent should do when the job runs", 2)
    now = datetime.now(UTC)
    try:
        schedule = parse_schedule(
            now=now,
            at=at,
            every_seconds=parse_seconds(every) if every is not None else None,
            cron_expr=cron,
            tz=tz or (None if every is not None else _zone_name(cfg)),  # parse_schedule checks the rest
        )
    except ScheduleError as exc:
        fail(str(exc), 2)
    job = new_job(name, message, schedule, now, channel=channel, to=to)
    store = _store(cfg)
    _guarded(lambda: store.add(job))
    shown_tz = _zone(cfg)
    console().print(
        f"Added job {job.id} '{job.name}': {schedule.describe(shown_tz)}; next run {_when(job.next_run, shown_tz)}",
        highlight=False,
        soft_wrap=True,
    )


@cron_app.command("remove")
def remove(job_id: JobIdArgument, config: ConfigOption = None) -> None:
    """Delete a job."""
    cfg, _ = load(config)
    store = _store(cfg)
    if not _guarded(lambda: store.remove(job_id)):
        _no_such_job(job_id)
    console().print(f"Removed job {job_id}.", highlight=False)


@cron_app.command("enable")
def enable(
    job_id: JobIdArgument,
    disable: Annotated[bool, typer.Option("--disable", help="Disable the job instead.")] = False,
    config: ConfigOption = None,
) -> None:
    """Enable a job (re-armed from now), or disable it with --disable."""
    cfg, _ = load(config)
    store = _store(cfg)
    job = _guarded(lambda: store.set_enabled(job_id, not disable, datetime.now(UTC)))
    if job is None:
        _no_such_job(job_id)
    elif disable:
        console().print(f"Disabled job {job_id}.", highlight=False)
    elif job.next_run is None:
        console().print(f"Enabled job {job_id}, but its time has passed: it will not run again.", highlight=False)
    else:
        console().print(f"Enabled job {job_id}; next run {_when(job.next_run, _zone(cfg))}.", highlight=False)


@cron_app.command("run", short_help="Run a job once, now, and print its answer.")
def run(job_id: JobIdArgument, config: ConfigOption = None, verbose: VerboseOption = False) -> None:
    """Run a job once, now, and print its answer (its schedule stays as it is)."""
    cfg, _ = load(config)
    setup_logging(verbose, quiet=not verbose)

    import asyncio

    from mofaclaw.config import paths
    from mofaclaw.errors import ConfigError, MofaclawError
    from mofaclaw.runtime import build_runtime
    from mofaclaw.services.cron import job_message, record_run

    async def run_once(message: InboundMessage) -> str:
        runtime = build_runtime(cfg, home=paths.mofaclaw_home())
        async with runtime.running():
            return await runtime.ask(message)

    store = _store(cfg)
    job = _guarded(lambda: store.get(job_id))
    if job is None:
        _no_such_job(job_id)
    started = datetime.now(UTC)
    error: str | None = None
    try:
        answer = asyncio.run(run_once(job_message(job)))
    except ConfigError as exc:  # the setup is wrong, not the job: nothing to record
        fail(str(exc), 2)
    except MofaclawError as exc:
        error = str(exc) or type(exc).__name__
    _guarded(lambda: store.update(job_id, lambda j: record_run(j, started, error)))
    if error is not None:
        fail(f"job {job_id} failed: {error}")
    console().print(answer, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(cron_app, name="cron")
