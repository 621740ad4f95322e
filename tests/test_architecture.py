"""The house plan's import rules, checked on the source: layers point one way and no module imports in a circle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mofaclaw"

LEAVES = {"types", "errors", "tasks", "templates", "__init__"}  # __init__: the version
LOW = LEAVES | {"providers", "session", "bus"}
MIDDLE = LOW | {"agent"}
# What each top-level part may import besides itself (DESIGN.md §1).
ALLOWED: dict[str, set[str]] = {
    **{leaf: {"__init__"} for leaf in LEAVES},
    "config": {"errors", "__init__"},
    "providers": LEAVES,
    "session": LEAVES,
    "bus": LEAVES,
    "agent": LOW,
    "gateway": MIDDLE,
    "channels": MIDDLE,
    "services": MIDDLE,
    "mcp": MIDDLE,
    "backends": MIDDLE | {"config", "services"},
    "runtime": MIDDLE | {"config", "gateway", "channels", "services", "mcp", "backends"},
    "cli": MIDDLE | {"config", "gateway", "channels", "services", "mcp", "runtime", "backends"},
    "__main__": {"cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module_level_only: bool) -> Iterator[str]:
    """The mofaclaw modules `path` imports; with `module_level_only`, only those run at import time."""
    tree = ast.parse(path.read_text("utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]

    def visit(node: ast.AST, top: bool) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                if not module_level_only:
                    yield from visit(child, top)
                continue
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if nested and module_level_only:
                continue
            if isinstance(child, ast.Import):
                yield from (a.name for a in child.names if a.name.startswith("mofaclaw"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join([*package.split(".")[:len(package.split(".")) - child.level + 1], base]).strip(".")
                if base.startswith("mofaclaw"):
                    yield base
            else:
                yield from visit(child, top and not nested)

    yield from visit(tree, True)


SOURCES = sorted(PACKAGE.rglob("*.py"))


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    own = part(module_name(path))
    wrong = sorted({m for m in imports(path, module_level_only=False)
                    if part(m) != own and part(m) not in ALLOWED[own]})
    assert not wrong, f"{own} must not import {wrong} (DESIGN.md §1: imports flow one way)"


def test_no_module_imports_in_a_circle() -> None:
    graph = {module_name(p): set(imports(p, module_level_only=True)) for p in SOURCES}
    # `from mofaclaw.x import name` may name a submodule or an attribute: keep the module it names.
    graph = {m: {d if d in graph else d.rpartition(".")[0] for d in deps} - {m} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep):], dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep in graph and dep not in state:
                walk(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
