"""Where mofaclaw keeps things: MOFACLAW_HOME, the config file, the data files under it."""

from __future__ import annotations

import os
from pathlib import Path


def mofaclaw_home() -> Path:
    return Path(os.environ.get("MOFACLAW_HOME") or Path.home() / ".mofaclaw").expanduser()


def config_path(flag: Path | None = None) -> Path:
    """--config PATH, else $MOFACLAW_CONFIG, else $MOFACLAW_HOME/config.toml."""
    if flag is not None:
        return flag.expanduser()
    if env := os.environ.get("MOFACLAW_CONFIG"):
        return Path(env).expanduser()
    return mofaclaw_home() / "config.toml"


# The files under a home; `home` defaults to MOFACLAW_HOME. The runtime passes its home explicitly.


def sessions_db(home: Path | None = None) -> Path:
    return (home or mofaclaw_home()) / "sessions.db"


def cron_store(home: Path | None = None) -> Path:
    return (home or mofaclaw_home()) / "cron" / "jobs.json"


def cli_history(home: Path | None = None) -> Path:
    return (home or mofaclaw_home()) / "history" / "cli_history"


def default_workspace(home: Path | None = None) -> Path:
    return (home or mofaclaw_home()) / "workspace"


def workspace(configured: str, home: Path | None = None) -> Path:
    """agents.defaults.workspace when set, else the workspace under the home."""
    return Path(configured).expanduser() if configured else default_workspace(home)
