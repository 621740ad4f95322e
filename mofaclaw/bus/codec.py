"""Bus messages as JSON text, so a turn and its replies can travel between replicas through Redis."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.errors import TurnErrorCode
from mofaclaw.types import ChatMessage, ClientTools, GenerationOptions, ToolCall, ToolSpec, Usage


class CodecError(ValueError):
    """The text is not a bus message this version understands."""


def encode_inbound(message: InboundMessage) -> str:
    return json.dumps({
        "channel": message.channel, "sender_id": message.sender_id, "chat_id": message.chat_id,
        "content": message.content, "media": list(message.media), "metadata": dict(message.metadata),
        "request_id": message.request_id, "session_key_override": message.session_key_override,
        "history": None if message.history is None else [_message(m) for m in message.history],
        "instructions": message.instructions, "options": _options(message.options), "kind": message.kind,
        "live_updates": message.live_updates, "client_tools": _client_tools(message.client_tools),
        "tool_results": [_message(m) for m in message.tool_results], "reply_to": message.reply_to,
    })


def decode_inbound(text: str) -> InboundMessage:
    item = _object(text)
    try:
        history = item["history"]
        return InboundMessage(
            channel=item["channel"], sender_id=item["sender_id"], chat_id=item["chat_id"],
            content=item["content"], media=tuple(item["media"]), metadata=item["metadata"],
            request_id=item["request_id"], session_key_override=item["session_key_override"],
            history=None if history is None else tuple(_load_message(m) for m in history),
            instructions=item["instructions"], options=_load_options(item["options"]), kind=item["kind"],
            live_updates=item["live_updates"], client_tools=_load_client_tools(item["client_tools"]),
            tool_results=tuple(_load_message(m) for m in item["tool_results"]), reply_to=item["reply_to"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"not an inbound bus message: {exc!r}") from None


def encode_outbound(message: OutboundMessage) -> str:
    usage = message.usage
    return json.dumps({
        "channel": message.channel, "chat_id": message.chat_id, "content": message.content,
        "kind": message.kind, "request_id": message.request_id,
        "usage": None if usage is None else [usage.prompt_tokens, usage.completion_tokens],
        "finish_reason": message.finish_reason,
        "error_code": None if message.error_code is None else message.error_code.value,
        "status": message.status, "metadata": dict(message.metadata), "media": list(message.media),
        "tool_name": message.tool_name, "tool_summary": message.tool_summary,
        "tool_calls": [_call(c) for c in message.tool_calls],
        "messages": [_message(m) for m in message.messages], "reply_to": message.reply_to,
    })


def decode_outbound(text: str) -> OutboundMessage:
    item = _object(text)
    try:
        usage, code = item["usage"], item["error_code"]
        return OutboundMessage(
            channel=item["channel"], chat_id=item["chat_id"], content=item["content"], kind=item["kind"],
            request_id=item["request_id"], usage=None if usage is None else Usage(*usage),
            finish_reason=item["finish_reason"], error_code=None if code is None else TurnErrorCode(code),
            status=item["status"], metadata=item["metadata"], media=tuple(item["media"]),
            tool_name=item["tool_name"], tool_summary=item["tool_summary"],
            tool_calls=tuple(ToolCall(**c) for c in item["tool_calls"]),
            messages=tuple(_load_message(m) for m in item["messages"]), reply_to=item["reply_to"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"not an outbound bus message: {exc!r}") from None


def _object(text: str) -> dict[str, Any]:
    try:
        item = json.loads(text)
    except ValueError as exc:
        raise CodecError(f"not JSON: {exc}") from None
    if not isinstance(item, dict):
        raise CodecError("not a JSON object")
    return item


def _call(call: ToolCall) -> dict[str, str]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def _message(message: ChatMessage) -> dict[str, Any]:
    return {"role": message.role, "content": message.content, "tool_calls": [_call(c) for c in message.tool_calls],
            "tool_call_id": message.tool_call_id, "name": message.name}


def _load_message(item: Mapping[str, Any]) -> ChatMessage:
    return ChatMessage(item["role"], item["content"], tuple(ToolCall(**c) for c in item["tool_calls"]),
                       item["tool_call_id"], item["name"])


def _options(options: GenerationOptions) -> dict[str, Any]:
    return {"temperature": options.temperature, "top_p": options.top_p, "max_tokens": options.max_tokens,
            "stop": list(options.stop)}


def _load_options(item: Mapping[str, Any]) -> GenerationOptions:
    return GenerationOptions(item["temperature"], item["top_p"], item["max_tokens"], tuple(item["stop"]))


def _client_tools(tools: ClientTools) -> dict[str, Any]:
    return {"specs": [{"name": s.name, "description": s.description, "parameters": dict(s.parameters)}
                      for s in tools.specs],
            "tool_choice": tools.tool_choice, "parallel_tool_calls": tools.parallel_tool_calls}


def _load_client_tools(item: Mapping[str, Any]) -> ClientTools:
    specs = tuple(ToolSpec(s["name"], s["description"], s["parameters"]) for s in item["specs"])
    return ClientTools(specs, item["tool_choice"], item["parallel_tool_calls"])
