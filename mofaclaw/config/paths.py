"""Where mofaclaw keeps things: MOFACLAW_HOME, the config file, the data files under it."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700  # conversations, memory and keys live here: the owner only


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


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Create `path` and its missing parents as 0700, whatever the umask. With `tighten`, an existing
    directory that group or others may enter is narrowed to 0700, and the log says so."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to change
        os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode went through the umask
    if tighten and path not in missing:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            try:
                os.chmod(path, mode & 0o700)
            except OSError as exc:
                log.warning("%s is open to other users (mode %o) and could not be narrowed: %s",
                            path, mode, exc.strerror)
            else:
                log.warning("%s was open to other users (mode %o); narrowed to %o so only you can read "
                            "your conversations", path, mode, mode & 0o700)
    return path


def prepare_dirs(home: Path, workspace: Path) -> None:
    """The data dir (created or narrowed to 0700) and the workspace (0700 when created here)."""
    private_dir(home, tighten=True)
    private_dir(workspace)
