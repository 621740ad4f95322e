"""The message tool: lets the agent send a message to a chat (this one by default) through the bus."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mofaclaw.agent.tools.base import ToolContext
from mofaclaw.agent.tools.paths import display_path, resolve_path
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import OutboundMessage
from mofaclaw.errors import ToolError


class MessageTool:
    name = "message"
    description = (
        "Send a message to the user now, before the final answer (progress, a reminder, a result), or to "
        "another chat. channel and chat_id default to the current conversation."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "content": {"type": "string", "minLength": 1, "description": "The message text"},
            "channel": {"type": "string", "description": "Channel name, e.g. telegram; default: this one"},
            "chat_id": {"type": "string", "description": "Chat to send to; default: this chat"},
            "media": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 10,
                      "description": "Workspace files to attach; images go as photos, others as documents"},
        },
        "required": ["content"],
        "additionalProperties": False,
    }

    def __init__(self, bus: MessageBus, settings: ToolSettings | None = None) -> None:
        self.bus = bus
        self.settings = settings  # None: no files can be attached

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        channel = args.get("channel") or ctx.channel
        chat_id = args.get("chat_id")
        if not chat_id:
            if channel != ctx.channel:
                # This chat's id means nothing on another channel.
                raise ToolError(f"chat_id is required to send to channel '{channel}' from '{ctx.channel}'")
            chat_id = ctx.chat_id
        media = tuple(str(p) for p in self._files(args.get("media") or []))
        # No request_id: the message is not the turn's answer, and a channel that correlates
        # answers by request id (the gateway) must not take it for one.
        await self.bus.publish_outbound(
            OutboundMessage(channel=channel, chat_id=chat_id, content=args["content"], kind="message", media=media)
        )
        attached = f" with {len(media)} file(s)" if media else ""
        return f"Message sent to {channel}:{chat_id}{attached}."

    def _files(self, raw: list[str]) -> list[Path]:
        """The real paths of the files to attach, each checked like a file tool's read."""
        if raw and self.settings is None:
            raise ToolError("files cannot be attached here")
        paths = []
        for item in raw:
            assert self.settings is not None
            path = resolve_path(item, self.settings.workspace, self.settings.restrict_to_workspace)
            if not path.is_file():
                raise ToolError(f"cannot attach '{item}': {display_path(path, self.settings.workspace)} "
                                "is not an existing regular file")
            paths.append(path)
        return paths
