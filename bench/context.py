"""What every benchmark is handed: a scratch directory, the smoke switch, whether nanobot takes part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Context:
    workdir: Path  # scratch: server homes, logs, configs; removed after the run
    results: Path  # where raw artefacts (profiles) are written beside the JSON
    smoke: bool = False  # a few requests each, to keep the benchmarks working; numbers mean nothing
    nanobot: bool = False
    variant: str | None = None  # run the gateway with a proposed change (bench/variants.py)

    def pick(self, full: Any, smoke: Any) -> Any:
        return smoke if self.smoke else full


def added(results: dict[str, dict[str, Any]], baseline: str, metric: str) -> dict[str, dict[str, float]]:
    """p50/p99 of `metric` for each target minus the baseline's, in ms, and the p50 ratio."""
    base = results[baseline][metric]
    out = {}
    for label, entry in results.items():
        if label == baseline or not entry[metric]["n"]:
            continue
        mine = entry[metric]
        out[label] = {"p50_ms": round(mine["p50"] - base["p50"], 3), "p99_ms": round(mine["p99"] - base["p99"], 3),
                      "p50_ratio": round(mine["p50"] / base["p50"], 2) if base["p50"] else None}
    return out
