"""What the numbers were measured on: machine, interpreter, package versions, the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.servers import NANOBOT, ROOT

PACKAGES = ("mofaclaw", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "openai", "httpx2", "pydantic",
            "llama_cpp_python")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _memory_gib() -> float:
    first = Path("/proc/meminfo").read_text().splitlines()[0]  # MemTotal: N kB
    return round(int(first.split()[1]) / 1024 / 1024, 1)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _nanobot_version() -> str | None:
    found = sorted(NANOBOT.parent.parent.glob("lib/python*/site-packages/nanobot_ai-*.dist-info"))
    return found[-1].name.removeprefix("nanobot_ai-").removesuffix(".dist-info") if found else None


def environment() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gib": _memory_gib(), "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "product_code_modified": bool(_git("status", "--porcelain", "--", "mofaclaw")),
        "packages": {name: _version(name) for name in PACKAGES} | {"nanobot-ai": _nanobot_version()},
    }
