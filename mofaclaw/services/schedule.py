"""When a job runs: the three schedule kinds (at, every, cron) and their next run, correct across DST."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mofaclaw.errors import MofaclawError

CRON_FIELDS = "minute hour day-of-month month day-of-week"
_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleError(MofaclawError):
    """A schedule as written cannot be used: a bad date, expression, timezone or interval."""


@dataclass(frozen=True, slots=True)
class At:
    """Once, at one instant."""

    when: datetime  # aware
    kind: ClassVar[str] = "at"

    def __post_init__(self) -> None:
        if self.when.tzinfo is None:
            raise ScheduleError("an 'at' time must carry its timezone once parsed")

    def next_after(self, t: datetime) -> datetime | None:
        return self.when if self.when > t else None

    def describe(self, tz: tzinfo | None = None) -> str:
        return f"at {format_time(self.when, tz)}"


@dataclass(frozen=True, slots=True)
class Every:
    """Every `seconds`, starting at `anchor`."""

    seconds: int
    # Runs fall on anchor + n * seconds, so they never drift by the time each run takes.
    anchor: datetime
    kind: ClassVar[str] = "every"

    def __post_init__(self) -> None:
        if self.seconds < 1:
            raise ScheduleError(f"an interval must be at least 1 second, not {self.seconds}")

    def next_after(self, t: datetime) -> datetime:
        if t < self.anchor:
            return self.anchor
        step = timedelta(seconds=self.seconds)
        return self.anchor + ((t - self.anchor) // step + 1) * step

    def describe(self, tz: tzinfo | None = None) -> str:
        return f"every {format_seconds(self.seconds)}"


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field cron expression in a timezone (the machine's when `tz` is None)."""

    expr: str
    tz: str | None = None
    kind: ClassVar[str] = "cron"

    def __post_init__(self) -> None:
        # croniter (with dateutil, ~1 MB) is imported by the first cron schedule, not by every gateway.
        from croniter import croniter

        if len(self.expr.split()) != 5 or not croniter.is_valid(self.expr):
            raise ScheduleError(f"'{self.expr}' is not a valid cron expression (5 fields: {CRON_FIELDS})")
        if self.tz is not None:
            zone(self.tz)

    def next_after(self, t: datetime) -> datetime:
        from croniter import CroniterBadDateError, croniter

        tz = zone(self.tz) if self.tz else local_zone()
        runs = croniter(self.expr, t.astimezone(tz))
        # An expression with a fixed hour ("30 1 * * *") means a wall-clock time: it runs once on
        # the night clocks fall back, not in both passes of the repeated hour. One with a wildcard
        # hour ("0 * * * *") means elapsed time, and rightly runs in both.
        fixed_hour = not self.expr.split()[1].startswith("*")
        while True:
            try:
                run = runs.get_next(datetime)
            except CroniterBadDateError:
                raise ScheduleError(f"the cron expression '{self.expr}' never matches a date") from None
            if not (fixed_hour and _is_second_pass(run, tz)):
                return run.astimezone(UTC)

    def describe(self, tz: tzinfo | None = None) -> str:
        return f"cron '{self.expr}'" + (f" ({self.tz})" if self.tz else "")


Schedule = At | Every | Cron


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown timezone '{name}' (use an IANA name such as 'Europe/Paris')") from None


def local_zone() -> tzinfo:
    """The machine's zone with its DST rules (a fixed offset from datetime.astimezone() would go
    wrong at the next DST change)."""
    from dateutil.tz import gettz

    return gettz() or UTC


def _is_second_pass(run: datetime, tz: tzinfo) -> bool:
    """True when `run`'s wall-clock time happens twice (clocks fell back) and `run` is the later one."""
    wall = run.astimezone(tz).replace(tzinfo=None)
    first = wall.replace(tzinfo=tz, fold=0).timestamp()
    second = wall.replace(tzinfo=tz, fold=1).timestamp()
    return first != second and run.timestamp() == second


def parse_at(text: str, tz: str | None = None) -> At:
    """An ISO date-time; without an offset it is read in `tz`, else in the machine's local time."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(
            f"'{text}' is not an ISO date-time (e.g. 2026-03-08T09:00 or 2026-03-08T09:00+01:00)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone(tz)) if tz else when.astimezone()
    return At(when.astimezone(UTC))


def parse_schedule(
    *,
    now: datetime,
    at: str | None = None,
    every_seconds: int | None = None,
    cron_expr: str | None = None,
    tz: str | None = None,
) -> Schedule:
    """The one schedule a user asked for: exactly one of `at`, `every_seconds`, `cron_expr`."""
    given = [v for v in (at, every_seconds, cron_expr) if v is not None and v != ""]
    if len(given) != 1:
        raise ScheduleError("give exactly one schedule: at (a date-time), every (seconds) or cron (an expression)")
    if at is not None and at != "":
        schedule = parse_at(at, tz)
        if schedule.when <= now:
            raise ScheduleError(f"'{at}' is in the past")
        return schedule
    if tz:
        zone(tz)  # an unknown zone is the clearer complaint when both are wrong
    if every_seconds is not None:
        if tz:
            raise ScheduleError("a timezone applies only to 'at' and 'cron' schedules")
        if every_seconds < 1:
            raise ScheduleError(f"an interval must be at least 1 second, not {every_seconds}")
        return Every(every_seconds, anchor=now + timedelta(seconds=every_seconds))
    assert cron_expr is not None
    schedule = Cron(cron_expr.strip(), tz or None)
    schedule.next_after(now)  # "0 0 30 2 *" is well formed, but never runs: say so now
    return schedule


def parse_seconds(text: str) -> int:
    """An interval as written on a command line: "90", "90s", "15m", "2h" or "1d"."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ScheduleError(f"'{text}' is not an interval (seconds, or a number with s, m, h or d: 90, 15m, 2h)")
    seconds = int(match[1]) * _UNIT_SECONDS[match[2] or "s"]
    if seconds < 1:
        raise ScheduleError(f"an interval must be at least 1 second, not '{text}'")
    return seconds


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    match schedule:
        case At(when):
            return {"kind": "at", "at": when.isoformat()}
        case Every(seconds, anchor):
            return {"kind": "every", "seconds": seconds, "anchor": anchor.isoformat()}
        case Cron(expr, tz):
            return {"kind": "cron", "expr": expr, "tz": tz}


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """Raises ScheduleError (or KeyError/ValueError on malformed data, which the store reports)."""
    kind = data.get("kind")
    if kind == "at":
        return At(datetime.fromisoformat(data["at"]))
    if kind == "every":
        return Every(int(data["seconds"]), datetime.fromisoformat(data["anchor"]))
    if kind == "cron":
        return Cron(data["expr"], data.get("tz"))
    raise ScheduleError(f"unknown schedule kind {kind!r}")


def format_time(t: datetime, tz: tzinfo | None = None) -> str:
    """`t` as a person reads it, in `tz` (else the machine's zone)."""
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def format_seconds(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
