"""The Telegram channel: long polling with a watchdog, deny-by-default access with pairing, one
conversation per chat, streamed answers shown by editing one message at a bounded rate."""

from __future__ import annotations

import asyncio
import logging
import os

# python-telegram-bot 22 warns on every read of a duration unless this opt-in is set; the values are
# then timedeltas, which is all this module reads. Set before the library is imported.
os.environ.setdefault("PTB_TIMEDELTA", "true")

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from telegram import Bot, Message, Update, User
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter
from telegram.request import HTTPXRequest

from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.channels import redact
from mofaclaw.channels.base import ChannelFatal, sender_allowed
from mofaclaw.channels.pairing import PairingStore
from mofaclaw.channels.telegram_inbound import (
    TooLarge,
    addressed_text,
    attachment_of,
    command_of,
    download,
    quoted,
    with_context,
)
from mofaclaw.channels.telegram_send import Draft, TelegramSender, retry_after_seconds
from mofaclaw.channels.telegram_state import ChannelStatus, TelegramState
from mofaclaw.errors import MofaclawError

log = logging.getLogger(__name__)

NAME = "telegram"
HELP = (
    "I'm your mofaclaw agent. Just write to me.\n\n"
    "/new — start a new conversation (the old one is kept and remembered)\n"
    "/stop — stop the answer I'm working on\n"
    "/help — this message"
)


class ChannelError(MofaclawError):
    pass


REJECTED = "Telegram rejected the bot token: fix channels.telegram.token (or TELEGRAM_BOT_TOKEN) and restart"


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    token: str
    workspace: Path  # files people send land in workspace/media/telegram/<chat id>/
    state_dir: Path  # the update offset and the status file
    pairing_db: Path
    allow_from: tuple[str, ...] = ()  # user ids or usernames; empty: only paired senders
    api_base: str = "https://api.telegram.org"
    proxy: str | None = None
    poll_timeout: int = 30
    stall_timeout: float = 60.0
    stream_edit_interval: float = 1.0
    max_download_bytes: int = 20 * 1024 * 1024
    retry_initial: float = 1.0  # first back-off after a network error; doubles up to retry_max
    retry_max: float = 60.0


@dataclass
class _Turn:
    chat_id: str
    sender_id: str
    typing: asyncio.Task[None]
    draft: Draft | None = None


@dataclass
class _Connection:
    """A Bot and its HTTP clients. The poll has its own, replaced whole when the watchdog finds it stalled."""

    bot: Bot
    requests: Sequence[HTTPXRequest] = field(default_factory=tuple)

    async def close(self) -> None:
        for request in self.requests:
            await request.shutdown()


class TelegramChannel:
    name = NAME

    def __init__(self, settings: TelegramSettings, bus: MessageBus) -> None:
        if not settings.token:
            raise ChannelError("channels.telegram is enabled but has no token: set channels.telegram.token "
                               "or TELEGRAM_BOT_TOKEN (ask @BotFather for one)")
        self.settings = settings
        self.bus = bus
        # Installed before any Bot exists: the library logs its token-bearing URL when one is made.
        self._redactor = redact.SecretRedactor([settings.token])
        self._loggers = redact.install(self._redactor)
        self._sender_conn = self._connect(read_timeout=20.0)
        self.sender = TelegramSender(self._sender_conn.bot, settings.retry_initial)
        self.pairing = PairingStore(settings.pairing_db)
        self.state = TelegramState(settings.state_dir)
        self.me: User | None = None
        self._turns: dict[str, _Turn] = {}
        self._status = ChannelStatus(pid=os.getpid())
        self.stalls = 0  # polls the watchdog gave up on

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loggers = redact.install(self._redactor)
        self.me = await self._get_me()
        await self._set_status(state="starting", detail="")
        log.info("telegram: connected as @%s", self.me.username)
        await self._poll()

    async def stop(self) -> None:
        for turn in list(self._turns.values()):
            turn.typing.cancel()
            if turn.draft is not None:
                await turn.draft.stop()
        await asyncio.gather(*(t.typing for t in self._turns.values()), return_exceptions=True)
        self._turns.clear()
        if self._status.state != "failed":
            await self._set_status(state="stopped", detail="")
        # A fresh sending connection for a restart; an unused one holds no socket.
        await self._sender_conn.close()
        self._sender_conn = self._connect(read_timeout=20.0)
        self.sender.bot = self._sender_conn.bot
        redact.uninstall(self._redactor, self._loggers)

    def _connect(self, read_timeout: float | None) -> _Connection:
        s = self.settings
        base = s.api_base.rstrip("/")
        request = HTTPXRequest(connection_pool_size=8, read_timeout=read_timeout, connect_timeout=10.0,
                               write_timeout=20.0, proxy=s.proxy)
        polling = HTTPXRequest(connection_pool_size=1, read_timeout=read_timeout, connect_timeout=10.0, proxy=s.proxy)
        bot = Bot(s.token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", request=request,
                  get_updates_request=polling)
        return _Connection(bot, (request, polling))

    async def _get_me(self) -> User:
        delay = self.settings.retry_initial
        while True:
            try:
                return await self.sender.call(self._sender_conn.bot.get_me)
            except InvalidToken:
                await self._set_status(state="failed", detail="the bot token was rejected")
                raise ChannelFatal(REJECTED) from None
            except NetworkError as exc:
                await self._set_status(state="retrying", detail=f"cannot reach {self.settings.api_base}: {exc}")
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, self.settings.retry_max)

    # -- polling ---------------------------------------------------------------------------------

    async def _poll(self) -> None:
        """getUpdates in a loop. The watchdog: a poll that has not answered within stall_timeout is
        abandoned with its connection, and a fresh one asks again (a half-dead TCP connection can
        otherwise hang forever while every message goes unanswered)."""
        s = self.settings
        offset = await asyncio.to_thread(self.state.read_offset)
        poller = self._connect(read_timeout=None)
        delay = s.retry_initial
        try:
            while True:
                try:
                    async with asyncio.timeout(s.stall_timeout):
                        updates = await poller.bot.get_updates(
                            offset=offset, timeout=s.poll_timeout, allowed_updates=["message"],
                            read_timeout=s.stall_timeout + s.poll_timeout)
                except TimeoutError:
                    self.stalls += 1
                    log.warning("telegram: a poll has not answered in %.0fs; restarting it", s.stall_timeout)
                    await self._set_status(state="stalled", detail="poll restarted by the watchdog")
                    await poller.close()
                    poller = self._connect(read_timeout=None)
                    continue
                except RetryAfter as exc:
                    await asyncio.sleep(retry_after_seconds(exc))
                    continue
                except InvalidToken:
                    await self._set_status(state="failed", detail="the bot token was rejected")
                    raise ChannelFatal(REJECTED) from None
                except (Conflict, NetworkError) as exc:
                    why = ("another program polls this bot, or a webhook is set" if isinstance(exc, Conflict)
                           else str(exc))
                    log.warning("telegram: polling failed (%s); retrying in about %.0fs", why, delay)
                    await self._set_status(state="retrying", detail=why)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, s.retry_max)
                    continue
                delay = s.retry_initial
                await self._set_status(state="polling", detail="")
                for update in updates:
                    await self._handle_safely(update)
                    offset = update.update_id + 1
                    await asyncio.to_thread(self.state.write_offset, offset)
        finally:
            await poller.close()

    async def _handle_safely(self, update: Update) -> None:
        try:
            await self._handle(update)
        except Exception:  # task boundary: one bad update must not stop the poll
            log.exception("telegram: could not handle update %s", update.update_id)

    # -- inbound ---------------------------------------------------------------------------------

    async def _handle(self, update: Update) -> None:
        message = update.message
        user = message.from_user if message is not None else None
        if message is None or user is None or user.is_bot or self.me is None:
            return
        text = addressed_text(message, self.me)
        if text is None:
            return
        chat_id, sender_id = str(message.chat.id), str(user.id)
        if not await self._allowed(sender_id, user.username or ""):
            await self._ask_to_pair(chat_id, sender_id, user.username or "")
            return
        command = command_of(text, self.me)
        if command in ("start", "help"):
            await self.sender.send_plain(chat_id, HELP)
            return
        if command == "stop":
            await self._stop_turns(chat_id)
            return
        if command == "new":
            await self._publish(message, sender_id, "/new", ())
            return
        content, media = await self._content(message, chat_id, text)
        if content:
            await self._publish(message, sender_id, content, media)

    async def _allowed(self, sender_id: str, username: str) -> bool:
        allow = self.settings.allow_from
        names = [a.removeprefix("@").lower() for a in allow]
        if sender_allowed(allow, sender_id) or (username and username.lower() in names):
            return True
        return await asyncio.to_thread(self.pairing.is_approved, NAME, sender_id)

    async def _ask_to_pair(self, chat_id: str, sender_id: str, username: str) -> None:
        request = await asyncio.to_thread(self.pairing.request, NAME, sender_id, username, chat_id)
        if not request.notify:
            return
        log.info("telegram: unknown sender %s%s asks to pair; code %s (mofaclaw pairing approve %s)",
                 sender_id, f" (@{username})" if username else "", request.code, request.code)
        await self.sender.send_plain(
            chat_id, f"I don't know you yet. Your pairing code is {request.code}\n\n"
                     f"My owner can let you in with: mofaclaw pairing approve {request.code}")

    async def _content(self, message: Message, chat_id: str, text: str) -> tuple[str, tuple[str, ...]]:
        notes: list[str] = []
        media: tuple[str, ...] = ()
        attachment = attachment_of(message)
        if attachment is not None:
            directory = self.settings.workspace / "media" / NAME / chat_id
            try:
                path = await download(self.sender.bot, attachment, directory,
                                      f"{message.message_id}-{attachment.unique_id}", self.settings.max_download_bytes)
            except TooLarge as exc:
                await self.sender.send_plain(chat_id, f"I can't take that {attachment.kind}: {exc}.")
            else:
                media = (str(path),)
                notes.append(f"[{attachment.kind}: {path.relative_to(self.settings.workspace).as_posix()}]")
        return with_context(text, quoted(message), notes), media

    async def _publish(self, message: Message, sender_id: str, content: str, media: tuple[str, ...]) -> None:
        chat_id = str(message.chat.id)
        inbound = InboundMessage(NAME, sender_id, chat_id, content, media=media,
                                 metadata={"message_id": message.message_id})
        typing = asyncio.create_task(self.sender.keep_typing(chat_id))
        self._turns[inbound.request_id] = _Turn(chat_id, sender_id, typing)
        await self.bus.publish_inbound(inbound)

    async def _stop_turns(self, chat_id: str) -> None:
        running = [(rid, t) for rid, t in self._turns.items() if t.chat_id == chat_id]
        for request_id, turn in running:
            del self._turns[request_id]
            turn.typing.cancel()
            if turn.draft is not None:
                await turn.draft.stop()
            await self.bus.publish_inbound(InboundMessage(NAME, turn.sender_id, chat_id, "", kind="cancel",
                                                          request_id=request_id))
        await self.sender.send_plain(chat_id, "Stopped." if running else "Nothing to stop.")

    # -- outbound --------------------------------------------------------------------------------

    async def send_delta(self, message: OutboundMessage) -> None:
        turn = self._turns.get(message.request_id or "")
        if message.kind != "delta" or turn is None:
            return  # tool notes are not part of the answer; deltas of a stopped turn are dropped
        if turn.draft is None:
            turn.draft = Draft(self.sender, turn.chat_id, self.settings.stream_edit_interval)
        turn.draft.append(message.content)

    async def send(self, message: OutboundMessage) -> None:
        turn = self._turns.pop(message.request_id, None) if message.request_id else None
        if turn is not None:
            turn.typing.cancel()
        if message.kind == "error":
            if turn is not None and turn.draft is not None:
                await turn.draft.stop()
            await self.sender.send_plain(message.chat_id, _one_line(message.content))
            return
        if turn is not None and turn.draft is not None:
            await turn.draft.finish(message.content)
        elif message.content.strip():
            await self.sender.send_text(message.chat_id, message.content)
        for path in message.media:
            await self.sender.send_file(message.chat_id, Path(path))

    async def _set_status(self, **changes: str) -> None:
        bot = f"@{self.me.username}" if self.me is not None and self.me.username else self._status.bot
        status = ChannelStatus(bot=bot, state=changes.get("state", self._status.state),
                               detail=changes.get("detail", self._status.detail)[:200],
                               updated=time.time(), pid=os.getpid())
        self._status = status
        try:
            await asyncio.to_thread(self.state.write_status, status)
        except OSError as exc:
            log.warning("telegram: cannot write %s: %s", self.state.status_file, exc)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split()) or "the turn failed"
    return "⚠️ " + (line if len(line) <= limit else line[: limit - 1] + "…")
