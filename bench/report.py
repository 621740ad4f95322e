"""Markdown tables of a benchmark's saved JSON, as pasted into bench/README.md."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Doc = dict[str, Any]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _latency(doc: Doc, metric: str) -> str:
    added = doc["added_vs_direct"]
    rows = []
    for label, entry in doc["results"].items():
        m, plus = entry[metric], added.get(label, {})
        rows.append([label, m["p50"], m["p90"], m["p99"], plus.get("p50_ms", "(baseline)"), plus.get("p99_ms"),
                     plus.get("p50_ratio"), f"{entry['errors']}/{entry['requests']}"])
    name = metric.removesuffix("_ms")
    return table(["target", f"{name} p50 ms", "p90 ms", "p99 ms", "added p50 ms", "added p99 ms", "p50 ratio",
                  "errors"], rows)


def _throughput(doc: Doc) -> str:
    runs = doc["results"]
    targets = list(dict.fromkeys(r["target"] for r in runs))
    levels = list(dict.fromkeys(r["concurrency"] for r in runs))
    by = {(r["target"], r["concurrency"]): r for r in runs}

    def cell(target: str, level: int) -> str:
        r = by.get((target, level))
        return "-" if r is None else f"{r['turns_per_s']} ({r['errors']} err)"

    turns = table(["concurrency", *targets, "gateway / relay"],
                  [[c, *(cell(t, c) for t in targets), doc["vs_relay"].get("gateway", {}).get(str(c))]
                   for c in levels])
    cpu = table(["concurrency", *(f"{t} CPU ms/turn" for t in targets), *(f"{t} p99 ms" for t in targets)],
                [[c, *(by[(t, c)]["server_cpu_ms_per_turn"] if (t, c) in by else None for t in targets),
                  *(by[(t, c)]["latency_ms"]["p99"] if (t, c) in by else None for t in targets)] for c in levels])
    return turns + "\n\n" + cpu


def _streams(doc: Doc) -> str:
    rows = [[r["streams"], r["target"], f"{r['completed']}/{r['streams']}", r["errors"], r["idle_rss_mb"],
             r["peak_rss_mb"], r["vm_hwm_mb"], r["kb_per_stream"], r["stream_ms"]["p50"], r["stream_ms"]["max"],
             r["ttft_ms"]["p99"], r["server_cpu_s"]] for r in doc["results"]]
    return table(["streams", "target", "completed", "errors", "idle RSS MB", "peak RSS MB", "VmHWM MB",
                  "kB/stream", "stream p50 ms", "stream max ms", "TTFT p99 ms", "server CPU s"], rows)


def _startup(doc: Doc) -> str:
    commands = table(["command", "p50 ms", "mean ms", "min ms", "max ms"],
                     [[c["command"], c["p50"], c["mean"], c["min"], c["max"]] for c in doc["commands"]])
    servers = table(["server", "healthy s (median)", "healthy s (max)", "first start s", "idle RSS MB",
                     "RSS after 1 turn MB", "stop s"],
                    [[s["target"], s["healthy_s_median"], s["healthy_s_max"], s["first_run"]["healthy_s"],
                      s["idle_rss_mb_median"], s["rss_after_turn_mb_median"], s["stop_s_median"]]
                     for s in doc["servers"]])
    parts = [commands, servers]
    for key in ("imports_help", "imports_gateway"):
        imports = doc[key]
        parts.append(f"`{' '.join(imports['command'][1:])}`: {imports['modules']} modules, "
                     f"{imports['total_ms']} ms of imports\n\n"
                     + table(["package", "self ms", "first imported by"],
                             [[p["package"], p["self_ms"], p["imported_by"]] for p in imports["packages"]]))
    return "\n\n".join(parts)


def _profile(doc: Doc) -> str:
    if "skipped" in doc:
        return f"skipped: {doc['skipped']}"
    parts = []
    for label, entry in doc["profiles"].items():
        prof, load = entry["profile"], entry["load"]
        exclusive = {a["area"]: a["percent"] for a in prof["exclusive"]}
        inclusive = {a["area"] for a in prof["areas"]}
        per_turn = prof.get("gil_ms_per_turn") or 0.0

        def ms(percent: float, per_turn: float = per_turn) -> float:
            return round(percent * per_turn / 100, 3)

        parts.append(f"**{label}** at c={load['concurrency']}: {load['turns_per_s']} turns/s while profiled, "
                     f"{prof['samples']} samples, {per_turn} ms of GIL-held time per turn\n\n"
                     + table(["area", "% inclusive", "% exclusive", "exclusive ms/turn"],
                             [[a["area"], a["percent"], exclusive.get(a["area"], 0.0),
                               ms(exclusive.get(a["area"], 0.0))] for a in prof["areas"]]
                             + [[a, "-", p, ms(p)] for a, p in exclusive.items() if a not in inclusive])
                     + "\n\n"
                     + table(["function (self)", "% of samples"],
                             [[f"`{f['function']}`", f["percent"]] for f in prof["self"]])
                     + "\n\nCPU per turn by thread, from /proc (all of it, GIL or not):\n\n"
                     + table(["thread", "user ms/turn", "system ms/turn"],
                             [[t["thread"], t["user_ms_per_turn"], t["system_ms_per_turn"]]
                              for t in prof.get("threads", [])]))
    return "\n\n".join(parts)


def _paired(doc: Doc) -> str:
    turns = doc.get("paired", {}).get("turns", [])
    if not turns:
        return ""
    rows = [[t["turn"], t["in_process_ttft_ms"], t["gateway_ttft_ms"], t["ratio"]] for t in turns]
    return "\n\nOne conversation, turn by turn, in process and through the gateway:\n\n" + table(
        ["turn", "in-process TTFT ms", "gateway TTFT ms", "gateway / in-process"], rows)


def _local(doc: Doc) -> str:
    if "skipped" in doc:
        return f"skipped: {doc['skipped']}"
    rows = [[r["path"], r["runs"], r["first_run_ttft_ms"], r["prompt_tokens"], r["ttft_ms"]["p50"],
             r["completion_tokens"], r["decode_tokens_per_s"], r["overall_tokens_per_s"]] for r in doc["results"]]
    return table(["path", "runs", "first run TTFT ms", "prompt tokens", "TTFT p50 ms", "completion tokens (median)",
                  "decode tok/s (median)", "end-to-end tok/s (median)"], rows) + _paired(doc)


def _tokens(doc: Doc) -> str:
    names = list(doc["results"][0]["parts"]) if doc["results"] else []
    rows = [[r["target"], r["turn"], r["messages"], r["tools"],
             *(f"{r['parts'][n]['chars']} / {r['parts'][n]['tokens']}" for n in names)] for r in doc["results"]]
    parts = table(["target", "turn", "messages", "tools", *(f"{n} chars / tokens" for n in names)], rows)
    sections = table(["system prompt section", "chars", "tokens"],
                     [[f"`{s['section']}`", s["chars"], s["tokens"]] for s in doc.get("system_sections", [])])
    return f"tokenizer: {doc['params']['tokenizer']}\n\n{parts}\n\n{sections}"


def _cluster(doc: Doc) -> str:
    if "skipped" in doc:
        return str(doc["skipped"])
    ratios = doc["vs_sqlite"]

    def ratio(r: Doc) -> object:
        return ratios.get(r["target"], {}).get(str(r["concurrency"]), "") if r["target"] != "sqlite" else "baseline"

    rows = [[r["target"], r["concurrency"], r["turns_per_s"], ratio(r), r["errors"], r["latency_p50_ms"],
             r["cpu_ms_per_turn"], r["backend_cpu_ms_per_turn"] or ""] for r in doc["results"]]
    return table(["target", "concurrency", "turns/s", "vs sqlite", "errors", "p50 ms", "CPU ms/turn (all)",
                  "of which redis+postgres"], rows)


RENDERERS: dict[str, Callable[[Doc], str]] = {
    "overhead": lambda d: _latency(d, "latency_ms"),
    "ttft": lambda d: _latency(d, "ttft_ms"),
    "throughput": _throughput,
    "wrk": lambda d: d["skipped"] if "skipped" in d else _throughput(d),
    "streams": _streams,
    "startup": _startup,
    "profile": _profile,
    "local": _local,
    "tokens": _tokens,
    "cluster": _cluster,
}


def render(doc: Doc) -> str:
    variant = f", gateway variant: {doc['gateway_variant']}" if doc.get("gateway_variant") else ""
    when = f"{doc['when']}, {doc['seconds']} s{', smoke' if doc['smoke'] else ''}{variant}"
    return f"### {doc['benchmark']} ({when})\n\n{RENDERERS[doc['benchmark']](doc)}\n"
