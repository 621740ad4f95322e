"""Sending to Telegram: Bot API calls that honour 429 retry_after and retry network errors, answers as
safe HTML with a plain-text fallback, files as photos or documents, and the typing indicator."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import stat
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from telegram import Bot, Message
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter

from mofaclaw.channels.telegram_format import Chunk, split_message

log = logging.getLogger(__name__)

T = TypeVar("T")
ATTEMPTS = 4
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # Bot API limits for uploads
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
TYPING_EVERY = 4.5  # seconds: Telegram shows "typing…" for about five after each call


def retry_after_seconds(exc: RetryAfter) -> float:
    value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_parse_error(exc: BadRequest) -> bool:
    return "can't parse entities" in str(exc).lower() or "unsupported start tag" in str(exc).lower()


class TelegramSender:
    def __init__(self, bot: Bot, retry_initial: float = 1.0) -> None:
        self.bot = bot
        self.retry_initial = retry_initial

    async def call(self, fn: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        """One Bot API call; a 429 waits what Telegram asks, a network error backs off with jitter."""
        delay = self.retry_initial
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await fn(**kwargs)
            except RetryAfter as exc:
                if attempt == ATTEMPTS:
                    raise
                wait = retry_after_seconds(exc)
                log.warning("telegram: flood control, waiting %.1fs as asked (429)", wait)
                await asyncio.sleep(wait)
            except BadRequest:
                raise  # our request is wrong: the same again would fail the same way
            except NetworkError as exc:
                if attempt == ATTEMPTS:
                    raise
                log.warning("telegram: %s; retrying in about %.1fs", exc, delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay *= 2
        raise AssertionError("unreachable")

    async def send_text(self, chat_id: str, markdown: str) -> list[Message]:
        return [await self.send_chunk(chat_id, chunk) for chunk in split_message(markdown)]

    async def send_plain(self, chat_id: str, text: str) -> Message:
        return await self.call(self.bot.send_message, chat_id=chat_id, text=text)

    async def send_chunk(self, chat_id: str, chunk: Chunk) -> Message:
        try:
            return await self.call(self.bot.send_message, chat_id=chat_id, text=chunk.html, parse_mode=ParseMode.HTML)
        except BadRequest as exc:
            if not is_parse_error(exc):
                raise
            log.warning("telegram: HTML refused (%s); sending plain text", exc)
            return await self.send_plain(chat_id, chunk.text)

    async def edit_chunk(self, chat_id: str, message_id: int, chunk: Chunk) -> None:
        try:
            try:
                await self.call(self.bot.edit_message_text, chat_id=chat_id, message_id=message_id,
                                text=chunk.html, parse_mode=ParseMode.HTML)
            except BadRequest as exc:
                if not is_parse_error(exc):
                    raise
                await self.call(self.bot.edit_message_text, chat_id=chat_id, message_id=message_id, text=chunk.text)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise

    async def send_file(self, chat_id: str, path: Path) -> None:
        """A photo when it looks like one and is small enough, else a document."""
        try:
            data = await asyncio.to_thread(_read_regular_file, path, MAX_DOCUMENT_BYTES)
        except (OSError, ValueError) as exc:
            await self.send_plain(chat_id, f"(file {path.name} not sent: {exc})")
            return
        if path.suffix.lower() in PHOTO_SUFFIXES and len(data) <= MAX_PHOTO_BYTES:
            await self.call(self.bot.send_photo, chat_id=chat_id, photo=data, filename=path.name)
        else:
            await self.call(self.bot.send_document, chat_id=chat_id, document=data, filename=path.name)

    async def keep_typing(self, chat_id: str, limit: float = 600.0) -> None:
        """Show "typing…" until cancelled (the answer came), at most `limit` seconds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + limit
        while loop.time() < end:
            try:
                await self.bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
            except Exception as exc:  # a missed indicator is cosmetic; the answer still comes
                log.debug("telegram: typing indicator failed: %s", exc)
            await asyncio.sleep(TYPING_EVERY)


def _read_regular_file(path: Path, limit: int) -> bytes:
    """Read a regular file without following a symlink at its last step (one planted after the
    message tool checked the path must not redirect the upload)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{info.st_size / 2**20:.1f} MB is over Telegram's {limit // 2**20} MB limit")
        return f.read(limit + 1)


class Draft:
    """An answer shown while it is written: one message, edited at most once per `interval`."""

    def __init__(self, sender: TelegramSender, chat_id: str, interval: float) -> None:
        self.sender, self.chat_id, self.interval = sender, chat_id, interval
        self.text = ""
        self.message_id: int | None = None
        self._shown: Chunk | None = None
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()  # held while a send or edit is on the wire
        self._task: asyncio.Task[None] | None = None

    def append(self, delta: str) -> None:
        self.text += delta
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def finish(self, final: str) -> None:
        """Show the final answer: the draft message becomes its first part, the rest follow."""
        await self.stop()
        chunks = split_message(final)
        if self.message_id is None:
            for chunk in chunks:
                await self.sender.send_chunk(self.chat_id, chunk)
            return
        if chunks[0] != self._shown:
            await self.sender.edit_chunk(self.chat_id, self.message_id, chunks[0])
        for chunk in chunks[1:]:
            await self.sender.send_chunk(self.chat_id, chunk)

    async def stop(self) -> None:
        """No more edits; waits for one on the wire, so its message id is known."""
        async with self._lock:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            async with self._lock:
                try:
                    await self._show()
                except Exception as exc:  # a failed draft edit is cosmetic; the final answer follows
                    log.warning("telegram: could not update the streamed answer: %s", exc)
            await asyncio.sleep(self.interval)

    async def _show(self) -> None:
        if not self.text.strip():
            return
        chunk = split_message(self.text)[0]
        if self.message_id is None:
            message = await self.sender.send_chunk(self.chat_id, chunk)
            self.message_id = message.message_id
        elif chunk != self._shown:
            await self.sender.edit_chunk(self.chat_id, self.message_id, chunk)
        self._shown = chunk
