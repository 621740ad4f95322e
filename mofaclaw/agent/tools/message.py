"""The message tool: lets the agent send a message to a chat (this one by default) through the bus."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mofaclaw.agent.tools.base import ToolContext
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
        },
        "required": ["content"],
        "additionalProperties": False,
    }

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        channel = args.get("channel") or ctx.channel
        chat_id = args.get("chat_id")
        if not chat_id:
            if channel != ctx.channel:
                # This chat's id means nothing on another channel.
                raise ToolError(f"chat_id is required to send to channel '{channel}' from '{ctx.channel}'")
            chat_id = ctx.chat_id
        # No request_id: the message is not the turn's answer, and a channel that correlates
        # answers by request id (the gateway) must not take it for one.
        await self.bus.publish_outbound(
            OutboundMessage(channel=channel, chat_id=chat_id, content=args["content"], kind="message")
        )
        return f"Message sent to {channel}:{chat_id}."
