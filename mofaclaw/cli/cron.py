"""`mofaclaw cron`: list, add, remove, enable and run scheduled jobs (a running gateway sees changes at once)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Annotated

import typer

from mofaclaw.cli.common import ConfigOption, VerboseOption, console, fail, load, setup_logging

if TYPE_CHECKING:
    from mofaclaw.config.models import Config
    from mofaclaw.services.cron_store import CronJob, CronStore

cron_app = typer.Typer(help="Scheduled jobs: list, add, remove, enable, run now.", no_args_is_help=True)

# Heavy modules (croniter, the runtime) are imported inside the commands: `mofaclaw --help` stays fast.


def _store() -> CronStore:
    from mofaclaw.config import paths
    from mofaclaw.services.cron_store import CronStore

    return CronStore(paths.cron_store())


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
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if t is not None else "-"


def _jobs(store: CronStore) -> list[CronJob]:
    from mofaclaw.errors import MofaclawError

    try:
        return store.jobs()
    except MofaclawError as exc:
        fail(str(exc))


@cron_app.command("list")
def list_jobs(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include disabled jobs.")] = False,
    config: ConfigOption = None,
) -> None:
    """The scheduled jobs: id, name, schedule, next run, last status."""
    from rich.table import Table

    cfg, _ = load(config)
    tz = _zone(cfg)
    jobs = _jobs(_store())
    shown = [j for j in jobs if all_ or j.enabled]
    if not shown:
        hidden = len(jobs) - len(shown)
        console.print("No scheduled jobs." + (f" ({hidden} disabled: mofaclaw cron list --all)" if hidden else ""))
        return
    table = Table("ID", "Name", "Schedule", "Next run", "Last status")
    for job in shown:
        last = "-"
        if job.last_status:
            last = f"{job.last_status} {_when(job.last_run, tz)}" if job.last_run else job.last_status
            if job.last_error:
                last += f": {job.last_error}"
        next_run = _when(job.next_run, tz) if job.enabled else "disabled"
        table.add_row(job.id, job.name, job.schedule.describe(), next_run, last)
    console.print(table)


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
    if sum(x is not None for x in (at, every, cron)) != 1:
        fail("give exactly one of --at, --every or --cron", 2)
    if tz and every is not None:
        fail("--tz applies only to --at and --cron", 2)
    store = _store()
    now = datetime.now(UTC)
    try:
        schedule = parse_schedule(
            now=now,
            at=at,
            every_seconds=parse_seconds(every) if every is not None else None,
            cron_expr=cron,
            tz=tz or (None if every is not None else _zone_name(cfg)),
        )
    except ScheduleError as exc:
        fail(str(exc), 2)
    job = new_job(name, message, schedule, now, channel=channel, to=to)
    store.add(job)
    console.print(
        f"Added job {job.id} '{job.name}': {schedule.describe()}; next run {_when(job.next_run, _zone(cfg))}",
        highlight=False,
        soft_wrap=True,
    )


@cron_app.command("remove")
def remove(job_id: Annotated[str, typer.Argument(help="The job's id.")], config: ConfigOption = None) -> None:
    """Delete a job."""
    load(config)
    if not _store().remove(job_id):
        fail(f"no cron job with id '{job_id}' (see: mofaclaw cron list --all)")
    console.print(f"Removed job {job_id}.", highlight=False)


@cron_app.command("enable")
def enable(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    disable: Annotated[bool, typer.Option("--disable", help="Disable the job instead.")] = False,
    config: ConfigOption = None,
) -> None:
    """Enable a job (re-armed from now), or disable it with --disable."""
    cfg, _ = load(config)
    job = _store().set_enabled(job_id, not disable, datetime.now(UTC))
    if job is None:
        fail(f"no cron job with id '{job_id}' (see: mofaclaw cron list --all)")
    if disable:
        console.print(f"Disabled job {job_id}.", highlight=False)
    elif job.next_run is None:
        console.print(f"Enabled job {job_id}, but its time has passed: it will not run again.", highlight=False)
    else:
        console.print(f"Enabled job {job_id}; next run {_when(job.next_run, _zone(cfg))}.", highlight=False)


@cron_app.command("run")
def run(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run a job once, now, and print its answer (its schedule is left as it is)."""
    cfg, _ = load(config)
    setup_logging(verbose, quiet=not verbose)

    import asyncio

    from mofaclaw.errors import ConfigError, MofaclawError
    from mofaclaw.runtime import run_single_turn
    from mofaclaw.services.cron import job_message, record_run

    store = _store()
    job = next((j for j in _jobs(store) if j.id == job_id), None)
    if job is None:
        fail(f"no cron job with id '{job_id}' (see: mofaclaw cron list --all)")
    started = datetime.now(UTC)
    error: str | None = None
    try:
        answer = asyncio.run(run_single_turn(cfg, job_message(job)))
    except ConfigError as exc:  # the setup is wrong, not the job: nothing to record
        fail(str(exc), 2)
    except MofaclawError as exc:
        error = str(exc) or type(exc).__name__
    store.update(job_id, lambda j: record_run(j, started, error))
    if error is not None:
        fail(f"job {job_id} failed: {error}")
    console.print(answer, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(cron_app, name="cron")
