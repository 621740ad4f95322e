"""Reading a Telegram message: is it meant for the bot, which command, what text and which files it
carries (downloaded into the workspace, size-capped), and the quoted message it replies to."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from telegram import Bot, Message, MessageEntity, User

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "new", "stop")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")
_QUOTE_MAX = 1000  # characters of a replied-to message kept as context


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: str  # photo | document | voice
    file_id: str
    unique_id: str
    size: int | None
    suffix: str


def addressed_text(message: Message, me: User) -> str | None:
    """The message's text (or caption) when it is meant for the bot, with the bot's @mention taken
    out: any private message; in a group, one that mentions the bot, replies to it or names it in a
    command ("/new@this_bot"). None when the bot should stay out of it."""
    text = message.text or message.caption or ""
    if message.chat.type == "private":
        return text
    mention = f"@{me.username}".lower() if me.username else None
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
        return _strip(text, mention)
    entities = message.parse_entities() if message.text else message.parse_caption_entities()
    for entity, value in entities.items():
        if entity.type == MessageEntity.MENTION and mention and value.lower() == mention:
            return _strip(text, mention)
        if entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == me.id:
            return text
        if entity.type == MessageEntity.BOT_COMMAND and mention and value.lower().endswith(mention):
            return text
    return None


def _strip(text: str, mention: str | None) -> str:
    if not mention:
        return text
    return re.sub(re.escape(mention), "", text, flags=re.IGNORECASE).strip()


def command_of(text: str, me: User) -> str | None:
    """"stop" for "/stop" or "/stop@this_bot"; None for anything that is not one of our commands."""
    match = re.match(r"/(\w+)(@\w+)?(\s|$)", text.strip())
    if match is None:
        return None
    name, target = match.group(1).lower(), match.group(2)
    if target and me.username and target[1:].lower() != me.username.lower():
        return None  # a command for another bot in the same group
    return name if name in COMMANDS else None


def quoted(message: Message) -> str:
    """The text of the message this one replies to (the part quoted, when only a part is), else ""."""
    if message.quote is not None and message.quote.text:
        text = message.quote.text
    elif message.reply_to_message is not None:
        text = message.reply_to_message.text or message.reply_to_message.caption or ""
    else:
        return ""
    return text[:_QUOTE_MAX] + ("…" if len(text) > _QUOTE_MAX else "")


def with_context(text: str, quote: str, notes: list[str]) -> str:
    """What the agent reads: the quoted message as a Markdown quote, the text, then one line per file."""
    parts = []
    if quote:
        parts.append("\n".join(f"> {line}" for line in quote.splitlines()))
    if text.strip():
        parts.append(text.strip())
    parts += notes
    return "\n\n".join(parts)


def attachment_of(message: Message) -> Attachment | None:
    if message.photo:
        photo = message.photo[-1]  # the largest size
        return Attachment("photo", photo.file_id, photo.file_unique_id, photo.file_size, ".jpg")
    if message.document is not None:
        doc = message.document
        suffix = Path(doc.file_name or "").suffix
        return Attachment("document", doc.file_id, doc.file_unique_id, doc.file_size,
                          suffix if _SUFFIX.fullmatch(suffix) else ".bin")
    if message.voice is not None:
        voice = message.voice
        return Attachment("voice", voice.file_id, voice.file_unique_id, voice.file_size, ".ogg")
    return None


class TooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"that file is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB")


async def download(bot: Bot, attachment: Attachment, directory: Path, name: str, limit: int) -> Path:
    """Fetch the file into `directory`; raises TooLarge before downloading anything over `limit`."""
    if attachment.size is not None and attachment.size > limit:
        raise TooLarge(attachment.size, limit)
    file = await bot.get_file(attachment.file_id)
    if file.file_size is not None and file.file_size > limit:
        raise TooLarge(file.file_size, limit)
    data = await file.download_as_bytearray()
    if len(data) > limit:
        raise TooLarge(len(data), limit)
    path = directory / f"{name}{attachment.suffix}"
    await asyncio.to_thread(_write, path, bytes(data))
    return path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
