"""What travels on the bus: a user's message in, the agent's deltas, answers and errors out."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mofaclaw.errors import TurnErrorCode
from mofaclaw.types import ChatMessage, ClientTools, GenerationOptions, ToolCall, Usage

InboundKind = Literal["message", "cancel"]
OutboundKind = Literal["message", "delta", "error", "progress"]


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A user's message from any channel.

    `history`, when given, replaces the stored conversation for this turn and makes the turn
    stateless (nothing is persisted): that is how a client that sends its whole conversation works.
    `instructions` are extra system-prompt text for this turn only.
    A message of kind "cancel" asks the agent to stop the turn with the same `request_id`
    (the client went away, or its time ran out).
    """

    channel: str
    sender_id: str
    chat_id: str
    content: str
    media: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = field(default_factory=new_request_id)
    session_key_override: str | None = None
    history: Sequence[ChatMessage] | None = None
    instructions: str = ""
    options: GenerationOptions = field(default_factory=GenerationOptions)
    kind: InboundKind = "message"
    # False when nobody watches the turn as it runs (a non-streaming API request): the agent then
    # sends only the final message, not a delta per token and a line per tool.
    live_updates: bool = True
    # The client's own tools, and its answers (role "tool") to calls a paused turn handed back to it:
    # a message with `tool_results` resumes that turn (`content` may then be empty).
    client_tools: ClientTools = field(default_factory=ClientTools)
    tool_results: tuple[ChatMessage, ...] = ()
    # The replica whose channel sent this and waits for the replies (set by the bus; "" = this process).
    reply_to: str = ""

    @property
    def session_key(self) -> str:
        return self.session_key_override or f"{self.channel}:{self.chat_id}"

    @property
    def persist(self) -> bool:
        return self.history is None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """Something the agent says. `kind` tells a channel what to do with it:

    - "delta": a piece of the answer as the model speaks (channels that cannot stream ignore it)
    - "progress": a one-line note about a tool being run; `tool_name` and `tool_summary` (a short
      summary of its arguments) say the same as structured fields, for clients that draw their own line
    - "message": the final answer of a turn (with the turn's usage), or a message sent by a tool
    - "error": the turn failed; `error_code` says how
    """

    channel: str
    chat_id: str
    content: str
    kind: OutboundKind = "message"
    request_id: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    error_code: TurnErrorCode | None = None
    status: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    media: tuple[str, ...] = ()  # files to send with the message (paths), e.g. from the message tool
    tool_name: str | None = None
    tool_summary: str = ""
    # A final message of a turn paused on the client's tools: the calls the client is to run.
    tool_calls: tuple[ToolCall, ...] = ()
    # A final message: the whole conversation of the turn, history included, without the system prompt
    # (a stateless client such as the Responses API stores it).
    messages: tuple[ChatMessage, ...] = ()
    # The replica to deliver to (copied from the inbound message; "" = this process).
    reply_to: str = ""
