"""Package data: workspace templates, built-in skills and the prompts, read with importlib.resources."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable


def templates_root() -> Traversable:
    return files(__name__)


@cache
def prompt(name: str) -> str:
    """The text of templates/prompts/<name>.md."""
    return (templates_root() / "prompts" / f"{name}.md").read_text(encoding="utf-8")
