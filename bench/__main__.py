"""`python -m bench NAME... [--smoke]`: run benchmarks, save their JSON in bench/results/, print a table."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.environment import environment
from bench.report import render
from bench.servers import nanobot_available
from bench.variants import VARIANTS
from bench.variants import parse as parse_variant

BENCHMARKS = ("overhead", "ttft", "throughput", "wrk", "streams", "startup", "profile", "local", "tokens", "cluster")
RESULTS = Path(__file__).resolve().parent / "results"


def _loop_factory() -> Any:
    try:
        import uvloop  # the load generator's own cost matters on a 2-core machine
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_one(name: str, smoke: bool, nanobot: bool, results: Path, variant: str | None) -> dict[str, Any]:
    module = importlib.import_module(f"bench.{name}")
    env = environment()  # before the run: the commit measured is the one the servers started from
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        ctx = Context(Path(tmp), results, smoke=smoke, nanobot=nanobot, variant=variant)
        began = time.monotonic()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            data = runner.run(module.run(ctx))
    doc = {"benchmark": name, "smoke": smoke, "gateway_variant": variant,
           "when": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": round(time.monotonic() - began, 1),
           "environment": env, **data}
    (results / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(BENCHMARKS)}, all, report")
    parser.add_argument("--smoke", action="store_true", help="a few requests each; numbers mean nothing")
    parser.add_argument("--no-nanobot", action="store_true", help="leave nanobot out even when installed")
    parser.add_argument("--variant", metavar="CHANGES", help="run the gateway with proposed changes applied, "
                        f"any of {', '.join(VARIANTS)} joined with '+' (bench/variants.py); results go to "
                        "bench/results/variant-CHANGES/")
    args = parser.parse_args(argv)
    # Stop cleanly (servers stopped, scratch removed) on Ctrl-C even when started in the background,
    # where the shell leaves SIGINT ignored, and on SIGTERM.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    names = list(BENCHMARKS) if args.smoke and not args.names else args.names
    if names == ["all"]:
        names = list(BENCHMARKS)
    if names == ["report"]:
        for name in BENCHMARKS:
            if (path := RESULTS / f"{name}.json").is_file():
                print(render(json.loads(path.read_text())))
        return 0
    if args.variant:
        try:
            parse_variant(args.variant)
        except ValueError as exc:
            parser.error(str(exc))
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        parser.error(f"unknown benchmark {', '.join(unknown)}" if unknown else "name a benchmark, all, or report")
    results = RESULTS / "smoke" if args.smoke else RESULTS / f"variant-{args.variant}" if args.variant else RESULTS
    results.mkdir(parents=True, exist_ok=True)
    nanobot = not args.smoke and not args.no_nanobot and nanobot_available()
    for name in names:
        print(f"== {name}{' (smoke)' if args.smoke else ''}", flush=True)
        doc = run_one(name, args.smoke, nanobot, results, args.variant)
        print(render(doc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
