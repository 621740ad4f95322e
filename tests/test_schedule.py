"""Schedules compute the runs a user expects: one-time, intervals without drift, cron across DST."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from mofaclaw.services.schedule import (
    At,
    Cron,
    Every,
    ScheduleError,
    parse_at,
    parse_schedule,
    parse_seconds,
    schedule_from_dict,
    schedule_to_dict,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(schedule: Cron | Every, start: datetime, count: int) -> list[datetime]:
    out, t = [], start
    for _ in range(count):
        t = schedule.next_after(t)
        out.append(t)
    return out


def test_at_runs_once_at_its_time() -> None:
    at = parse_at("2026-03-08T09:00+01:00")
    assert at.when == utc(2026, 3, 8, 8, 0)
    assert at.next_after(NOW) == utc(2026, 3, 8, 8, 0)
    assert at.next_after(utc(2026, 3, 8, 8, 0)) is None


@pytest.fixture
def new_york_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local zone is New York for the test."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_at_without_offset_is_local_time_or_the_given_zone(new_york_machine: None) -> None:
    assert parse_at("2026-03-08T09:00").when == utc(2026, 3, 8, 13, 0)  # EDT from 02:00 that day
    assert parse_at("2026-03-07T09:00").when == utc(2026, 3, 7, 14, 0)
    assert parse_at("2026-07-01 09:00", "Europe/Paris").when == utc(2026, 7, 1, 7, 0)


def test_cron_without_zone_follows_the_machines_zone_and_its_dst(new_york_machine: None) -> None:
    assert runs(Cron("0 9 * * *"), utc(2026, 3, 6, 15, 0), 2) == [utc(2026, 3, 7, 14, 0), utc(2026, 3, 8, 13, 0)]


def test_every_runs_on_a_fixed_grid_from_its_anchor() -> None:
    every = Every(3600, anchor=utc(2026, 3, 1, 13, 0))
    assert every.next_after(NOW) == utc(2026, 3, 1, 13, 0)
    assert runs(every, utc(2026, 3, 1, 13, 0), 3) == [utc(2026, 3, 1, h, 0) for h in (14, 15, 16)]
    # A run that finished late does not shift the later ones.
    assert every.next_after(utc(2026, 3, 1, 14, 59, 59)) == utc(2026, 3, 1, 15, 0)
    assert every.next_after(utc(2026, 3, 11, 13, 0, 1)) == utc(2026, 3, 11, 14, 0)


def test_cron_in_utc() -> None:
    assert runs(Cron("*/15 9 * * 1-5", "UTC"), utc(2026, 3, 6, 9, 40), 3) == [
        utc(2026, 3, 6, 9, 45),
        utc(2026, 3, 9, 9, 0),  # Friday 9:45, then Monday
        utc(2026, 3, 9, 9, 15),
    ]


def test_cron_keeps_wall_clock_time_across_spring_forward() -> None:
    # New York moves from EST (-5) to EDT (-4) at 2026-03-08 02:00.
    assert runs(Cron("0 9 * * *", "America/New_York"), utc(2026, 3, 6, 15, 0), 3) == [
        utc(2026, 3, 7, 14, 0),
        utc(2026, 3, 8, 13, 0),
        utc(2026, 3, 9, 13, 0),
    ]


def test_cron_time_skipped_by_spring_forward_runs_once_just_after() -> None:
    # 02:30 does not exist on 2026-03-08: the job runs once, at 03:00 EDT, then at 02:30 again.
    assert runs(Cron("30 2 * * *", "America/New_York"), utc(2026, 3, 7, 12, 0), 2) == [
        utc(2026, 3, 8, 7, 0),
        utc(2026, 3, 9, 6, 30),
    ]


def test_cron_at_a_fixed_hour_runs_once_when_clocks_fall_back() -> None:
    # 01:30 happens twice on 2026-11-01 (EDT, then EST): a daily 01:30 job runs once that night.
    assert runs(Cron("30 1 * * *", "America/New_York"), utc(2026, 10, 31, 12, 0), 2) == [
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]


def test_hourly_cron_runs_every_real_hour_when_clocks_fall_back() -> None:
    assert runs(Cron("0 * * * *", "America/New_York"), utc(2026, 11, 1, 4, 30), 3) == [
        utc(2026, 11, 1, 5, 0),  # 01:00 EDT
        utc(2026, 11, 1, 6, 0),  # 01:00 EST
        utc(2026, 11, 1, 7, 0),  # 02:00 EST
    ]


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"cron_expr": "0 9 * *"}, "not a valid cron expression"),
        ({"cron_expr": "0 9 * * * *"}, "not a valid cron expression"),
        ({"cron_expr": "61 9 * * *"}, "not a valid cron expression"),
        ({"cron_expr": "0 0 30 2 *"}, "never matches a date"),
        ({"cron_expr": "0 9 * * *", "tz": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"at": "next tuesday"}, "not an ISO date-time"),
        ({"at": "2026-02-30T09:00"}, "not an ISO date-time"),
        ({"at": "2026-02-01T09:00Z"}, "in the past"),
        ({"every_seconds": 0}, "at least 1 second"),
        ({"every_seconds": 60, "tz": "UTC"}, "timezone applies only"),
        ({}, "exactly one schedule"),
        ({"at": "2026-04-01T09:00Z", "every_seconds": 60}, "exactly one schedule"),
    ],
)
def test_bad_schedules_are_one_clear_sentence(kwargs: dict, complaint: str) -> None:
    with pytest.raises(ScheduleError, match=complaint) as caught:
        parse_schedule(now=NOW, **kwargs)
    assert "\n" not in str(caught.value)


def test_parse_schedule_builds_each_kind() -> None:
    assert parse_schedule(now=NOW, at="2026-04-01T09:00Z") == At(utc(2026, 4, 1, 9, 0))
    assert parse_schedule(now=NOW, every_seconds=60) == Every(60, NOW + timedelta(seconds=60))
    assert parse_schedule(now=NOW, cron_expr=" 0 9 * * * ", tz="Asia/Tokyo") == Cron("0 9 * * *", "Asia/Tokyo")


@pytest.mark.parametrize("schedule", [At(utc(2026, 4, 1, 9)), Every(90, NOW), Cron("0 9 * * 1", "Europe/Paris")])
def test_schedules_survive_the_jobs_file(schedule: At | Every | Cron) -> None:
    assert schedule_from_dict(schedule_to_dict(schedule)) == schedule


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400)])
def test_intervals_as_written_on_the_command_line(text: str, seconds: int) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1.5h", "-5", "0"])
def test_bad_intervals(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_seconds(text)
