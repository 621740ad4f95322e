"""What a server process costs: resident memory (now and peak) and CPU time, read from /proc."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, field: str) -> int:
    """A memory field of /proc/PID/status (VmRSS, VmHWM, ...) in kB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rss_mb(pid: int) -> float:
    return round(status_kb(pid, "VmRSS") / 1024, 1)


def hwm_mb(pid: int) -> float:
    return round(status_kb(pid, "VmHWM") / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat)


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """User and system CPU seconds of the main thread (the event loop) and of all other threads together
    (Python does not name its threads for the OS, so worker threads cannot be told apart here)."""
    out: dict[str, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        name = "main thread (event loop)" if task.name == str(pid) else "other threads (SQLite, DNS, ...)"
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        user, system = out.get(name, (0.0, 0.0))
        out[name] = (user + int(fields[11]) / _TICK, system + int(fields[12]) / _TICK)
    return out


class RSSSampler:
    """Samples VmRSS of a process every `interval` seconds while running; `peak_mb` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> RSSSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))

    @property
    def peak_mb(self) -> float:
        return round(self.peak_kb / 1024, 1)
