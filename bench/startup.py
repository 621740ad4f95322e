"""Start-up: `mofaclaw --help` wall time, `mofaclaw gateway` from exec to a healthy /health, idle RSS."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.client import Connection
from bench.context import Context
from bench.importtime import import_profile
from bench.load import Target, turn
from bench.procstat import rss_mb
from bench.servers import (
    NANOBOT,
    ROOT,
    Fleet,
    Server,
    free_port,
    gateway_command,
    gateway_config,
    nanobot_config,
    spawn_nanobot,
    start_upstream,
    wait_healthy,
)
from bench.stats import summary_ms

MOFACLAW = Path(sys.executable).parent / "mofaclaw"

Spawn = Callable[[int], tuple[subprocess.Popen[bytes], Path]]


def _time_command(cmd: list[str], runs: int, warmup: int = 2) -> dict[str, Any]:
    times = []
    for i in range(warmup + runs):
        began = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        elapsed = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}")
        if i >= warmup:
            times.append(elapsed)
    return {"command": " ".join(Path(c).name if c.startswith("/") else c for c in cmd), **summary_ms(times)}


async def _start_once(name: str, spawn: Spawn, session_field: str | None, model: str, settle: float) -> dict[str, Any]:
    port = free_port()
    began = time.monotonic()
    proc, log = spawn(port)
    server = Server(name, proc, port, log, model=model, session_field=session_field)
    try:
        healthy = wait_healthy(proc, port, log) - began
        await asyncio.sleep(settle)
        idle = rss_mb(proc.pid)
        connection = Connection(server.host, port)
        first = await turn(connection, Target(name, server), "hello there", f"start{port}")
        await connection.close()
        await asyncio.sleep(0.3)
        after_turn = rss_mb(proc.pid)
    finally:
        stopping = time.monotonic()
        server.stop()
        stopped = time.monotonic() - stopping
    return {"healthy_s": round(healthy, 3), "idle_rss_mb": idle, "first_turn_ms": round(first.latency * 1000, 1),
            "first_turn_ok": first.ok, "rss_after_turn_mb": after_turn, "stop_s": round(stopped, 3)}


async def _starts(name: str, spawn: Spawn, runs: int, settle: float, session_field: str | None = None,
                  model: str = "test-model") -> dict[str, Any]:
    first = await _start_once(name, spawn, session_field, model, settle)  # first run: creates its home
    samples = [await _start_once(name, spawn, session_field, model, settle) for _ in range(runs)]

    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 3)

    return {"target": name, "runs": runs, "first_run": first, "healthy_s_median": median("healthy_s"),
            "healthy_s_max": max(s["healthy_s"] for s in samples), "idle_rss_mb_median": median("idle_rss_mb"),
            "rss_after_turn_mb_median": median("rss_after_turn_mb"), "stop_s_median": median("stop_s"),
            "samples": samples}


def _gateway_spawner(workdir: Path, upstream: Server, variant: str | None) -> Spawn:
    home = workdir / "gateway-home"
    home.mkdir()
    (home / "config.toml").write_text(gateway_config(upstream.url))

    def spawn(port: int) -> tuple[subprocess.Popen[bytes], Path]:
        log = home / f"gateway-{port}.log"
        with log.open("wb") as out:
            command = gateway_command(variant) if variant else [str(MOFACLAW), "gateway"]
            proc = subprocess.Popen([*command, "--port", str(port)], stdout=out,
                                    stderr=subprocess.STDOUT, env={**os.environ, "MOFACLAW_HOME": str(home)})
        return proc, log

    return spawn


def _relay_spawner(workdir: Path, upstream: Server) -> Spawn:
    def spawn(port: int) -> tuple[subprocess.Popen[bytes], Path]:
        log = workdir / f"relay-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "relay.py"), "--upstream", upstream.url,
                                     "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
        return proc, log

    return spawn


def _nanobot_spawner(workdir: Path, upstream: Server) -> Spawn:
    configs: dict[int, Path] = {}

    def spawn(port: int) -> tuple[subprocess.Popen[bytes], Path]:
        configs[port] = nanobot_config(workdir, upstream.url, port)
        return spawn_nanobot(configs[port])

    return spawn


async def run(ctx: Context) -> dict[str, Any]:
    runs, warmup, starts, settle = ctx.pick((20, 2, 10, 1.0), (2, 1, 1, 0.2))
    commands = [_time_command([sys.executable, "-c", "pass"], runs, warmup),
                _time_command([str(MOFACLAW), "--help"], runs, warmup),
                _time_command([str(MOFACLAW), "gateway", "--help"], runs, warmup)]
    if ctx.nanobot:
        commands.append(_time_command([str(NANOBOT), "--help"], runs, warmup))
    with Fleet(ctx.workdir) as fleet:
        upstream = fleet.add(start_upstream(ctx.workdir))
        servers = [await _starts("gateway", _gateway_spawner(ctx.workdir, upstream, ctx.variant), starts, settle,
                                 "conversation_id", "mofaclaw"),
                   await _starts("relay", _relay_spawner(ctx.workdir, upstream), starts, settle)]
        if ctx.nanobot:
            servers.append(await _starts("nanobot", _nanobot_spawner(ctx.workdir, upstream), starts, settle,
                                         "session_id"))
    return {"params": {"runs": runs, "gateway_starts": starts,
                       "note": "healthy = exec of the process -> first 200 from GET /health (polled every 5 ms); "
                               "idle RSS 1 s after healthy; the first start of each creates its home"},
            "commands": commands, "servers": servers,
            "imports_help": import_profile(["-m", "mofaclaw", "--help"]),
            "imports_gateway": import_profile(["-c", "import mofaclaw.cli.app, mofaclaw.runtime, "
                                               "mofaclaw.gateway.app, mofaclaw.gateway.server"])}
