"""Where an import-bound start-up goes: `python -X importtime` grouped by package, with who imported it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass
class _Node:
    name: str
    depth: int
    self_us: int
    cumulative_us: int
    children: list[_Node] = field(default_factory=list)
    parent: _Node | None = None


def _tree(stderr: str) -> list[_Node]:
    """importtime prints children before their parent, one level deeper: rebuild the tree."""
    pending: list[_Node] = []
    for match in _LINE.finditer(stderr):
        node = _Node(match[4], len(match[3]), int(match[1]), int(match[2]))
        while pending and pending[-1].depth > node.depth:
            child = pending.pop()
            child.parent = node
            node.children.insert(0, child)
        pending.append(node)
    return pending


def _walk(nodes: list[_Node]) -> list[_Node]:
    out = []
    for node in nodes:
        out.append(node)
        out += _walk(node.children)
    return out


def _importer(node: _Node, own: str) -> str:
    """The closest module of our own package above a third-party import."""
    parent = node.parent
    while parent is not None and not parent.name.startswith(own + "."):
        parent = parent.parent
    return parent.name if parent is not None else "-"


def import_profile(args: list[str], own: str = "mofaclaw", top: int = 12) -> dict[str, Any]:
    """Run `python -X importtime ARGS`: the total, and the packages costing most (self time, ms)."""
    done = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=60)
    nodes = _walk(_tree(done.stderr))
    by_package: dict[str, int] = defaultdict(int)
    first: dict[str, _Node] = {}
    for node in nodes:
        root = node.name.split(".")[0]
        by_package[root] += node.self_us
        if root not in first or node.depth < first[root].depth:
            first[root] = node
    ranked = sorted(by_package.items(), key=lambda item: -item[1])[:top]
    return {
        "command": ["python", "-X", "importtime", *args],
        "modules": len(nodes), "total_ms": round(sum(by_package.values()) / 1000, 1),
        "packages": [{"package": name, "self_ms": round(us / 1000, 1),
                      "imported_by": "-" if name == own else _importer(first[name], own)} for name, us in ranked],
    }
