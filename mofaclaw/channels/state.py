"""Where the chat channels keep their state under MOFACLAW_HOME (shared by the channels, the runtime and the CLI)."""

from __future__ import annotations

from pathlib import Path


def pairing_db(home: Path) -> Path:
    return home / "pairing.db"


def telegram_state_dir(home: Path) -> Path:
    return home / "channels" / "telegram"
