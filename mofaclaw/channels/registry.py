"""Which chat channels exist: a name -> factory table, and the enabled ones built from the config.

This is the runtime's channel half (it reads `[channels.*]` so nothing below it has to): each factory
turns its config section into the channel's own settings. Channel modules are imported only when
their channel is enabled, so an unused channel's library costs nothing at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mofaclaw.bus.base import MessageBus
from mofaclaw.channels.base import Channel

if TYPE_CHECKING:
    from mofaclaw.config.models import ChannelsConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChannelDeps:
    bus: MessageBus
    workspace: Path
    home: Path  # MOFACLAW_HOME: channel state and the pairing store live under it


def pairing_db(home: Path) -> Path:
    return home / "pairing.db"


def telegram_state_dir(home: Path) -> Path:
    return home / "channels" / "telegram"


def _telegram(section: Any, deps: ChannelDeps) -> Channel:
    from mofaclaw.channels.telegram import TelegramChannel, TelegramSettings

    settings = TelegramSettings(
        token=section.bot_token(),
        workspace=deps.workspace,
        state_dir=telegram_state_dir(deps.home),
        pairing_db=pairing_db(deps.home),
        allow_from=tuple(section.allow_from),
        api_base=section.api_base,
        proxy=section.proxy or None,
        poll_timeout=section.poll_timeout,
        stall_timeout=section.stall_timeout,
        stream_edit_interval=section.stream_edit_interval,
        max_download_bytes=section.max_download_bytes,
    )
    return TelegramChannel(settings, deps.bus)


FACTORIES: dict[str, Callable[[Any, ChannelDeps], Channel]] = {"telegram": _telegram}


def build_channels(config: ChannelsConfig, deps: ChannelDeps) -> list[Channel]:
    """The enabled channels that have a factory; raises MofaclawError for one that cannot start
    (a Telegram channel without a token)."""
    enabled = [(name, section) for name, section in config.items() if section.enabled]
    for name, _ in enabled:
        if name not in FACTORIES:
            log.warning("channels.%s is enabled, but there is no such channel (known: %s)", name, ", ".join(FACTORIES))
    return [FACTORIES[name](section, deps) for name, section in enabled if name in FACTORIES]
