"""`mofaclaw onboard`: creates MOFACLAW_HOME, a commented config.toml and the workspace templates."""

from __future__ import annotations

import os
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer

from mofaclaw.cli.common import ConfigOption, console


def onboard(
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files with the templates.")] = False,
) -> None:
    """Create the config file and the workspace. Existing files are kept unless --force."""
    from mofaclaw.config import paths
    from mofaclaw.config.loader import read_toml
    from mofaclaw.templates import templates_root

    home = paths.private_dir(paths.mofaclaw_home(), tighten=True)
    config_file = paths.config_path(config)
    created: list[Path] = []
    if force or not config_file.exists():
        config_file.parent.mkdir(parents=True, exist_ok=True)
        text = (templates_root() / "config.example.toml").read_text("utf-8")
        _write_private(config_file, text)
        created.append(config_file)

    workspace_setting = ""
    try:
        workspace_setting = read_toml(config_file).get("agents", {}).get("defaults", {}).get("workspace", "")
    except Exception:  # a broken config is reported by the commands that use it, not here
        workspace_setting = ""
    workspace = paths.workspace(workspace_setting, home)
    paths.private_dir(workspace)  # the agent's notes and memory: the owner's only
    created += _copy_tree(templates_root() / "workspace", workspace, force)
    (workspace / "skills").mkdir(parents=True, exist_ok=True)

    for path in created:
        console().print(f"[green]created[/] {path}")
    if not created:
        console().print("Nothing to do: everything exists already (use --force to reset files to the templates).")
    console().print(f"\nConfig: {config_file}\nWorkspace: {workspace}\n"
                  "Next: set a model and key in the config, or run [bold]mofaclaw agent[/] with the local model.")


def _write_private(path: Path, text: str) -> None:
    # The config may hold API keys: readable by the owner only, from the first byte.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _copy_tree(source: Traversable, target: Path, force: bool) -> list[Path]:
    created = []
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        destination = target / entry.name
        if entry.is_dir():
            created += _copy_tree(entry, destination, force)
        elif force or not destination.exists():
            destination.write_text(entry.read_text("utf-8"), encoding="utf-8")
            created.append(destination)
    return created


def register(app: typer.Typer) -> None:
    app.command()(onboard)
