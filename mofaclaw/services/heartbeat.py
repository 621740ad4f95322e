"""The heartbeat: every interval the agent looks at HEARTBEAT.md and acts on the tasks written there."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from mofaclaw.agent.tools.workspace_files import WorkspaceFiles
from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.errors import MofaclawError
from mofaclaw.services.clock import Clock, SystemClock
from mofaclaw.services.turns import TurnFn
from mofaclaw.templates import prompt

log = logging.getLogger(__name__)

HEARTBEAT_FILE = "HEARTBEAT.md"
SESSION = "heartbeat"

_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.DOTALL)
# Lines that carry no task: blank, a heading, a rule, a bare list marker or an empty checkbox ("- [ ]").
_NO_TASK = re.compile(r"\s*(#.*|[-*_]{3,}|([-*+]|\d+[.)])\s*(\[[ xX]?\])?)?\s*")
_OK = re.compile(r"\W*heartbeat_ok\W*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class HeartbeatSettings:
    interval: float = 1800.0  # seconds
    channel: str = ""  # where answers other than HEARTBEAT_OK go; both empty: only logged
    to: str = ""


def has_tasks(text: str) -> bool:
    """False for a file of only headings, comments, blank lines and empty checkboxes: no LLM call."""
    return any(not _NO_TASK.fullmatch(line) for line in _COMMENT.sub("", text).splitlines())


def is_ok(answer: str) -> bool:
    """HEARTBEAT_OK, in any case, with any punctuation or markup around it (models add `**`, `.`)."""
    return _OK.fullmatch(answer.strip()) is not None


class HeartbeatService:
    def __init__(
        self,
        workspace: Path,
        turn: TurnFn,
        bus: MessageBus,
        settings: HeartbeatSettings | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._files = WorkspaceFiles(workspace)
        self._turn = turn
        self._bus = bus
        self._settings = settings or HeartbeatSettings()
        self._clock = clock or SystemClock()

    async def run(self) -> None:
        """Beat every interval, the first one interval after start (not at every gateway start)."""
        interval = timedelta(seconds=self._settings.interval)
        next_beat = self._clock.now() + interval
        while True:
            await self._clock.sleep_until(next_beat)
            await self.beat()
            # Beats missed while the machine slept are not made up: one look at the tasks is enough.
            next_beat = max(next_beat + interval, self._clock.now())

    async def beat(self) -> str | None:
        """One heartbeat; returns the answer that was worth telling the user, if any."""
        # No symlink followed, regular files only, capped: an exec command planting HEARTBEAT.md
        # must not make the heartbeat read a secret or a FIFO (a skipped file is logged once).
        text = await asyncio.to_thread(self._files.read, HEARTBEAT_FILE)
        if text is None:
            return None
        if not has_tasks(text):
            log.debug("heartbeat: no tasks in %s", HEARTBEAT_FILE)
            return None
        try:
            answer = await self._turn(self._message(text))
        except MofaclawError as exc:
            log.warning("heartbeat turn failed: %s", exc)
            return None
        except Exception:  # a crashed beat must not stop the next ones
            log.exception("heartbeat turn crashed")
            return None
        if is_ok(answer) or not answer.strip():
            log.debug("heartbeat: nothing needs attention")
            return None
        await self._deliver(answer)
        return answer

    def _message(self, text: str) -> InboundMessage:
        return InboundMessage(
            channel=SESSION,
            sender_id=SESSION,
            chat_id=SESSION,
            content=text,
            session_key_override=SESSION,
            instructions=prompt("heartbeat"),
        )

    async def _deliver(self, answer: str) -> None:
        channel, to = self._settings.channel, self._settings.to
        if not (channel and to):
            log.info("heartbeat (set heartbeat.channel and heartbeat.to to receive this): %s", answer)
            return
        await self._bus.publish_outbound(OutboundMessage(channel=channel, chat_id=to, content=answer))
