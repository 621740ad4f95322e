"""What a provider is: the request it takes, the events it streams back, and the LLMProvider protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mofaclaw.types import ChatMessage, GenerationOptions, ToolCall, ToolChoice, ToolSpec, Usage


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: Sequence[ChatMessage]
    tools: Sequence[ToolSpec] = ()
    options: GenerationOptions = field(default_factory=GenerationOptions)
    tool_choice: ToolChoice | None = None  # None: the provider's default ("auto")
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallReady:
    """A tool call whose argument fragments have all arrived."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # "stop", "length", "tool_calls", ...


StreamEvent = TextDelta | ToolCallReady | UsageReport | Finish


class LLMProvider(Protocol):
    """Anything that can stream a chat completion. Non-streaming callers consume the same stream."""

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


def wire_message(message: ChatMessage) -> dict[str, Any]:
    """A message in OpenAI's chat format: the one conversion every provider starts from."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    if message.name is not None and message.role == "tool":
        wire["name"] = message.name
    return wire
