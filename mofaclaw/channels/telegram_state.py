"""What the Telegram channel keeps on disk: the next update to ask for, and its state for `mofaclaw status`.

The offset makes a restart resume after the last processed update (no replay, nothing lost). The
status file is how `mofaclaw status` learns the bot's name and whether the running gateway is polling,
without the network and without the token: calling getMe from `status` would only prove that the
token works, not that a gateway is answering.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    bot: str = ""  # "@username" once getMe answered
    state: str = "starting"  # starting | polling | stalled | retrying | stopped | failed
    detail: str = ""  # one line: why retrying or failed
    updated: float = 0.0  # unix time of the last change or successful poll
    pid: int = 0


class TelegramState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offset_file = directory / "offset"
        self.status_file = directory / "status.json"

    def read_offset(self) -> int | None:
        try:
            return int(self.offset_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def write_offset(self, offset: int) -> None:
        _atomic_write(self.offset_file, f"{offset}\n")

    def write_status(self, status: ChannelStatus) -> None:
        _atomic_write(self.status_file, json.dumps(asdict(status)))

    def read_status(self) -> ChannelStatus | None:
        try:
            data = json.loads(self.status_file.read_text())
            return ChannelStatus(**{k: data[k] for k in ChannelStatus.__dataclass_fields__ if k in data})
        except (FileNotFoundError, ValueError, TypeError):
            return None


def describe(status: ChannelStatus | None, now: float | None = None) -> str:
    """One line for `mofaclaw status`."""
    if status is None:
        return "not run yet (start `mofaclaw gateway`)"
    age = max(0.0, (now or time.time()) - status.updated)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.updated))
    line = f"{status.bot or 'bot name unknown'} · {status.state}"
    if status.detail:
        line += f" ({status.detail})"
    if status.state == "polling" and not _alive(status.pid):
        return f"{status.bot or 'bot name unknown'} · not running (last seen {when})"
    return f"{line} · updated {when} ({age:.0f}s ago)"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file and rename it over the old one: a crash leaves the old or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
