"""Where a path given by the model really points: exec's working directory, checked against the workspace.

The file tools do not use this: they open through safefs, where the check and the open are one walk.
"""

from __future__ import annotations

import os
from pathlib import Path

from mofaclaw.errors import ToolError


def resolve_path(raw: str, workspace: Path, restrict: bool) -> Path:
    """The real path of `raw` (relative paths start at the workspace; `~` is the user's home).

    The check is made on the real path, with every symlink resolved and `..` collapsed, because
    the lexical path can stay inside the workspace while a symlink planted in it points anywhere.
    The real path is what the caller should open, so a link is not followed a second time.
    """
    if not raw.strip():
        raise ToolError("path is empty")
    if "\x00" in raw:
        raise ToolError("path contains a NUL character")
    base = Path(os.path.realpath(workspace))
    candidate = Path(os.path.expanduser(raw))
    if not candidate.is_absolute():
        candidate = base / candidate
    real = Path(os.path.realpath(candidate))
    if restrict and not real.is_relative_to(base):
        raise ToolError(
            f"path '{raw}' resolves to {real}, which is outside the workspace ({base}); "
            "tools.restrict_to_workspace is on, so only paths inside the workspace are allowed"
        )
    return real


def display_path(path: Path, workspace: Path) -> str:
    """How to name a path back to the model: relative to the workspace when it is inside it."""
    base = Path(os.path.realpath(workspace))
    if path == base:
        return "."
    if path.is_relative_to(base):
        return str(path.relative_to(base))
    return str(path)
