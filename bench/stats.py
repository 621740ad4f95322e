"""Percentiles and summaries of latency samples, in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """n, mean and percentiles of samples given in seconds, reported in ms (3 decimals)."""
    ms = [s * 1000 for s in seconds]

    def r(x: float) -> float:
        return round(x, 3)

    return {"n": len(ms), "mean": r(sum(ms) / len(ms)) if ms else math.nan, "min": r(min(ms, default=math.nan)),
            "p50": r(percentile(ms, 50)), "p90": r(percentile(ms, 90)), "p99": r(percentile(ms, 99)),
            "max": r(max(ms, default=math.nan))}
