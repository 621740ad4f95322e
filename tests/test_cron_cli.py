"""`mofaclaw cron` as a user types it: add, list, enable, remove, run, and one clear line for bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from upstream import Fail, ScriptedUpstream

from mofaclaw.services.cron_store import CronStore


def mofaclaw(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOFACLAW_")}
    env |= {"MOFACLAW_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mofaclaw", *args], env=env, capture_output=True, text=True, timeout=60
    )


def added_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    match = re.match(r"Added job (\w+) ", result.stdout)
    assert match, result.stdout
    return match[1]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def store(home: Path) -> CronStore:
    return CronStore(home / "cron" / "jobs.json")


def test_add_list_disable_enable_remove(home: Path) -> None:
    tokyo = ("--cron", "0 9 * * *", "--tz", "Asia/Tokyo", "--channel", "telegram", "--to", "42")
    daily = added_id(mofaclaw(home, "cron", "add", "--name", "news", "--message", "Summarize the news", *tokyo))
    hourly = added_id(mofaclaw(home, "cron", "add", "--name", "ping", "--message", "ping", "--every", "1h"))

    listed = mofaclaw(home, "cron", "list")
    assert listed.returncode == 0
    assert "cron '0 9 * * *' (Asia/Tokyo)" in listed.stdout and "every 1h" in listed.stdout
    assert daily in listed.stdout and hourly in listed.stdout
    jobs = {j.id: j for j in store(home).jobs()}
    assert (jobs[daily].deliver, jobs[daily].channel, jobs[daily].to) == (True, "telegram", "42")
    assert jobs[daily].next_run is not None and jobs[daily].next_run.astimezone(UTC).hour == 0  # 09:00 JST

    assert mofaclaw(home, "cron", "enable", hourly, "--disable").returncode == 0
    assert hourly not in mofaclaw(home, "cron", "list").stdout
    assert hourly in mofaclaw(home, "cron", "list", "--all").stdout
    assert mofaclaw(home, "cron", "enable", hourly).returncode == 0
    assert store(home).get(hourly).enabled  # type: ignore[union-attr]

    assert mofaclaw(home, "cron", "remove", daily).returncode == 0
    assert [j.id for j in store(home).jobs()] == [hourly]
    gone = mofaclaw(home, "cron", "remove", daily)
    assert gone.returncode == 1 and f"no cron job with id '{daily}'" in gone.stderr


def test_list_when_there_is_nothing(home: Path) -> None:
    result = mofaclaw(home, "cron", "list")
    assert (result.returncode, result.stdout.strip()) == (0, "No scheduled jobs.")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--cron", "0 9 * *"), "'0 9 * *' is not a valid cron expression"),
        (("--cron", "99 9 * * *"), "'99 9 * * *' is not a valid cron expression"),
        (("--cron", "0 9 * * *", "--tz", "Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (("--at", "2026-13-01T09:00"), "'2026-13-01T09:00' is not an ISO date-time"),
        (("--at", "2020-01-01T09:00"), "'2020-01-01T09:00' is in the past"),
        (("--every", "soon"), "'soon' is not an interval"),
        (("--every", "60", "--cron", "0 9 * * *"), "give exactly one schedule"),
        (("--every", "60", "--deliver"), "needs both --channel and --to"),
    ],
)
def test_bad_schedules_are_one_line_and_exit_2(home: Path, args: tuple[str, ...], complaint: str) -> None:
    result = mofaclaw(home, "cron", "add", "--name", "x", "--message", "x", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert complaint in result.stderr
    assert store(home).jobs() == []


def test_run_now_asks_the_agent_and_records_the_run(home: Path, upstream: ScriptedUpstream) -> None:
    write_config(home, upstream)
    job_id = added_id(mofaclaw(home, "cron", "add", "--name", "r", "--message", "water the plants", "--every", "1d"))
    before = store(home).get(job_id)

    result = mofaclaw(home, "cron", "run", job_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo: water the plants"
    after = store(home).get(job_id)
    assert after is not None and before is not None
    assert after.last_status == "ok" and after.last_run is not None
    assert after.next_run == before.next_run  # running now does not move the schedule

    upstream.enqueue(Fail(400, "model not found"))
    failed = mofaclaw(home, "cron", "run", job_id)
    assert failed.returncode == 1
    assert len(failed.stderr.strip().splitlines()) == 1 and "model not found" in failed.stderr
    assert store(home).get(job_id).last_status == "error"  # type: ignore[union-attr]


def test_one_time_job_in_an_hour(home: Path) -> None:
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    job_id = added_id(mofaclaw(home, "cron", "add", "--name", "tea", "--message", "tea", "--at", at.isoformat()))
    assert store(home).get(job_id).next_run == at  # type: ignore[union-attr]


def write_config(home: Path, upstream: ScriptedUpstream) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[agents.defaults]\nmodel = "scripted/test-model"\n\n'
        f'[providers.scripted]\napi_base = "{upstream.base_url}"\napi_key = "sk-test"\nmax_retries = 0\n'
    )
