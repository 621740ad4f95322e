"""The wire format of /v1/chat/completions: the request we accept, and how it maps onto a turn."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from mofaclaw.gateway.errors import APIError
from mofaclaw.types import ChatMessage, GenerationOptions, ToolCall

# One rule for the body field and the X-Conversation-Id header: it becomes a session key and a header.
CONVERSATION_ID_PATTERN = r"^[!-~]([ -~]{0,198}[!-~])?$"
CONVERSATION_ID_RULE = "1 to 200 printable ASCII characters, not starting or ending with a space"
_CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)
# pydantic's tags for union members and validators in an error location, not field names
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none"})


class _Lenient(BaseModel):
    # OpenAI adds fields often; a client sending one we do not know must still work. Fields we know are
    # strict: "5" is not 5 and "yes" is not true.
    model_config = ConfigDict(extra="ignore", strict=True)


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
    # mofaclaw's own: also send `event: progress` SSE events, one per tool the agent runs. Opt-in, because
    # OpenAI's SDKs would parse such an event as one more chunk.
    include_progress: bool = False


class ChatCompletionRequest(_Lenient):
    """The body of POST /v1/chat/completions. Fields not listed here are accepted and ignored."""

    model: str
    messages: list[WireMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    tools: list[dict[str, Any]] | None = Field(None, description="Function tools the client runs itself.")
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    conversation_id: str | None = Field(
        None, min_length=1, max_length=200, pattern=CONVERSATION_ID_PATTERN,
        description=f"mofaclaw: a server-side conversation ({CONVERSATION_ID_RULE}); "
                    "the X-Conversation-Id header is the same.")
    # Accepted for compatibility and ignored (typed all the same): the agent answers once, its own way.
    n: int = Field(1, ge=1, le=1, description="Only 1 is supported.")
    user: str | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    store: bool | None = None
    metadata: dict[str, str] | None = None

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
        param, message = _describe(exc.errors())
        raise APIError(400, f"Invalid value for '{param}': {message}", param=param or None) from None
    return request


def request_id_of(header: str | None, own: str) -> str:
    """The client's X-Request-Id when it follows the conversation-id rule, else our own id: it is echoed
    and logged, so control characters, escapes and megabyte ids stop here (a tracing header is not worth
    refusing a request for)."""
    return header if header is not None and _CONVERSATION_ID.match(header) else own


def conversation_of(request: ChatCompletionRequest, header: str | None) -> str | None:
    """The conversation id from the body or the X-Conversation-Id header, checked by one rule."""
    if header is not None and not _CONVERSATION_ID.match(header):
        raise APIError(400, f"Invalid X-Conversation-Id header: it must be {CONVERSATION_ID_RULE}.",
                       param="X-Conversation-Id")
    if request.conversation_id is not None and header is not None and header != request.conversation_id:
        raise APIError(400, "conversation_id in the body and the X-Conversation-Id header differ; send one.",
                       param="conversation_id")
    return request.conversation_id or header


def _describe(errors: list[ErrorDetails]) -> tuple[str, str]:
    """The most specific failing field as `messages[0].content`, and what is wrong with it."""
    located = [(_param(e["loc"]), e) for e in errors]
    param, first = max(located, key=lambda pe: pe[0].count(".") + pe[0].count("["))
    if param == "conversation_id":
        return param, f"it must be {CONVERSATION_ID_RULE}."
    messages = list(dict.fromkeys(e["msg"] for p, e in located if p == param))
    if len(messages) > 1:  # every member of a union failed
        return param, "none of the accepted types matched (" + "; ".join(messages) + ")."
    return param, first["msg"]


def _param(loc: tuple[int | str, ...]) -> str:
    param = ""
    for part in loc:
        if isinstance(part, int):
            param += f"[{part}]"
        elif re.fullmatch(r"[a-z_][a-z0-9_]*", part) and part not in _TYPE_TAGS:
            param += f".{part}" if param else part
    return param


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
