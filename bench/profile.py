"""Where the time goes: py-spy samples the gateway (and the bare relay, for contrast) under throughput load."""

from __future__ import annotations

import asyncio
import gzip
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.load import Target, closed_loop
from bench.procstat import thread_cpu
from bench.servers import Fleet, Server, start_gateway, start_relay, start_upstream

CONCURRENCY = 64
RATE = 250  # samples per second

# What a reader can act on; a frame belongs to the first area whose pattern matches its file.
AREAS: list[tuple[str, str]] = [
    ("mofaclaw: SQLite session store", r"mofaclaw/session/"),
    ("mofaclaw: context builder (system prompt)", r"mofaclaw/agent/context|mofaclaw/agent/skills"),
    ("mofaclaw: tool specs / registry", r"mofaclaw/agent/tools/"),
    ("mofaclaw: provider adapter (openai_compat)", r"mofaclaw/providers/"),
    ("mofaclaw: agent loop / runner", r"mofaclaw/agent/(loop|runner|locks)"),
    ("mofaclaw: bus + channel manager", r"mofaclaw/bus/|mofaclaw/channels/|mofaclaw/gateway/channel"),
    ("mofaclaw: gateway request handling", r"mofaclaw/gateway/"),
    ("openai SDK (request build, response parse)", r"openai/"),
    ("httpx2 / httpcore2 (client HTTP)", r"httpx2?/|httpcore2?/|h11/|anyio/"),
    ("pydantic (validation, model_dump)", r"pydantic"),
    ("fastapi / starlette routing", r"fastapi/|starlette/"),
    ("uvicorn (server HTTP)", r"uvicorn/"),
    ("logging", r"logging/"),
    ("json", r"json/"),
    ("asyncio event loop", r"asyncio/"),
]
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def summarize(raw: Path, top: int = 25) -> dict[str, Any]:
    """Collapsed stacks (`frame;frame;... count`) -> share of samples by area: inclusive (any frame in it),
    exclusive (the area of the frame nearest the leaf that has one), and by leaf function (self)."""
    total = 0
    areas: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [f for f in stack.split(";") if _FRAME.match(f)]
        if frames:
            leaves[_short(frames[-1])] += samples
        matched = [area for area in map(_area, frames) if area is not None]
        for area in set(matched):
            areas[area] += samples
        owners[matched[-1] if matched else "other (stdlib, typing, ...)"] += samples

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {"samples": total,
            "areas": [{"area": a, "percent": pct(n)} for a, n in areas.most_common()],
            "exclusive": [{"area": a, "percent": pct(n)} for a, n in owners.most_common()],
            "self": [{"function": f, "percent": pct(n)} for f, n in leaves.most_common(top)]}


def _threads(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
             turns: float) -> list[dict[str, Any]]:
    """CPU per turn of each thread (by name) over the profiled seconds, user and system apart."""
    rows = []
    for name, (user, system) in after.items():
        user0, system0 = before.get(name, (0.0, 0.0))
        if turns and (user - user0 or system - system0):
            rows.append({"thread": name, "user_ms_per_turn": round(1000 * (user - user0) / turns, 3),
                         "system_ms_per_turn": round(1000 * (system - system0) / turns, 3)})
    return sorted(rows, key=lambda r: -(r["user_ms_per_turn"] + r["system_ms_per_turn"]))


def _area(frame: str) -> str | None:
    return next((area for area, pattern in AREAS if re.search(pattern, frame)), None)


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    assert match is not None
    return f"{match['function']} ({match['file']})"


async def _profiled(target: Target, upstream: Server, out: Path, keep: Path, warmup: float, duration: float,
                    spy: str) -> dict[str, Any]:
    running = asyncio.create_task(closed_loop(target, upstream, CONCURRENCY, duration, warmup))
    await asyncio.sleep(warmup)
    before = thread_cpu(target.server.pid)
    seconds = max(1, int(duration) - 1)
    record = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(target.server.pid), "--duration", str(seconds),
        "--rate", str(RATE), "--gil", "--nonblocking", "--format", "raw", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await record.communicate()
    after = thread_cpu(target.server.pid)
    outcome = await running
    if record.returncode != 0 or not out.is_file():
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    load = outcome.report()
    profile = summarize(out)
    # Samples are taken while some thread holds the GIL: samples / rate / turns = GIL-held ms per turn.
    turns = load["turns_per_s"] * seconds
    profile["gil_ms_per_turn"] = round(1000 * profile["samples"] / RATE / turns, 3) if turns else None
    profile["threads"] = _threads(before, after, turns)
    kept = keep / (out.name + ".gz")
    kept.write_bytes(gzip.compress(out.read_bytes()))
    return {"load": load, "raw": kept.name, "seconds": seconds, "profile": profile}


async def run(ctx: Context) -> dict[str, Any]:
    spy = py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    warmup, duration = ctx.pick((3.0, 20.0), (0.3, 1.0))
    with Fleet(ctx.workdir) as fleet:
        upstream = fleet.add(start_upstream(ctx.workdir))
        relay = fleet.add(start_relay(ctx.workdir, upstream))
        gateway = fleet.add(start_gateway(ctx.workdir, upstream, variant=ctx.variant))
        profiles = {}
        for target in (Target("gateway", gateway), Target("gateway-stateless", gateway, conversations=False),
                       Target("relay", relay)):
            out = ctx.workdir / f"profile-{target.label}.txt"
            profiles[target.label] = await _profiled(target, upstream, out, ctx.results, warmup, duration, spy)
    return {"params": {"concurrency": CONCURRENCY, "rate_hz": RATE, "window_s": duration,
                       "note": "py-spy record --gil --nonblocking --format raw: samples of the thread holding the GIL "
                               "(the Python work a single process serialises); "
                               "areas are inclusive (a sample counts once per area), functions are leaves"},
            "profiles": profiles}
