"""The wire format of /v1/chat/completions: the request we accept, and how it maps onto a turn."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mofaclaw.gateway.errors import APIError
from mofaclaw.types import ChatMessage, GenerationOptions, ToolCall


class _Lenient(BaseModel):
    # OpenAI adds fields often; a client sending one we do not know must still work.
    model_config = ConfigDict(extra="ignore")


class FunctionCall(_Lenient):
    name: str
    arguments: str = ""


class WireToolCall(_Lenient):
    id: str
    type: str = "function"
    function: FunctionCall


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class WireMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type in ("text", "input_text") and p.text)
        return self.content or ""


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[WireMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    conversation_id: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def options(self) -> GenerationOptions:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return GenerationOptions(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            stop=stop,
        )


def parse_request(data: Any) -> ChatCompletionRequest:
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.")
    try:
        request = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("str", "list[")))
        raise APIError(400, f"Invalid value for '{param}': {first['msg']}", param=param or None) from None
    return request


def split_instructions(messages: list[WireMessage]) -> tuple[str, list[WireMessage]]:
    """Client system/developer messages become extra instructions; the rest is the conversation."""
    instructions = "\n\n".join(m.text() for m in messages if m.role in ("system", "developer") and m.text())
    rest = [m for m in messages if m.role not in ("system", "developer")]
    return instructions, rest


def new_input(messages: list[WireMessage]) -> str:
    """With a server-side conversation: the user messages after the client's last assistant message."""
    last_assistant = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    texts = [m.text() for m in messages[last_assistant + 1 :] if m.role == "user"]
    if not any(t.strip() for t in texts):
        raise APIError(400, "The request has no user message after the last assistant message.",
                       param="messages")
    return "\n\n".join(t for t in texts if t.strip())


def stateless_turn(messages: list[WireMessage]) -> tuple[list[ChatMessage], str]:
    """Without a conversation id: everything before the last user message is the history."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    if last_user == -1 or not messages[last_user].text().strip():
        raise APIError(400, "The request has no user message.", param="messages")
    history = [to_chat(m) for m in messages[:last_user]]
    return [m for m in history if m is not None], messages[last_user].text()


def to_chat(message: WireMessage) -> ChatMessage | None:
    if message.role == "user":
        return ChatMessage("user", message.text())
    if message.role == "assistant":
        calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ())
        return ChatMessage("assistant", message.text() or None, calls)
    if message.role in ("tool", "function"):
        return ChatMessage("tool", message.text(), tool_call_id=message.tool_call_id, name=message.name)
    return None
