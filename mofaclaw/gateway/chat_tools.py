"""Client tools on /v1/chat/completions: the request's tools checked, and a turn resumed with tool results."""

from __future__ import annotations

from dataclasses import dataclass, field

from mofaclaw.gateway.backend import AgentBackend
from mofaclaw.gateway.client_tools import check_results_answer_calls, client_tools, function_spec
from mofaclaw.gateway.errors import APIError
from mofaclaw.gateway.schemas import ChatCompletionRequest, WireMessage, to_chat
from mofaclaw.types import ChatMessage, ClientTools


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """A request's turn: `history` None means the server holds the conversation."""

    content: str
    history: list[ChatMessage] | None = None
    tool_results: tuple[ChatMessage, ...] = ()
    client: ClientTools = field(default_factory=ClientTools)


def chat_client_tools(chat: ChatCompletionRequest, backend: AgentBackend | None) -> ClientTools:
    specs = [function_spec(tool, i, nested=True) for i, tool in enumerate(chat.tools or ())]
    return client_tools(specs, chat.tool_choice, chat.parallel_tool_calls, backend)


def resumed_turn(messages: list[WireMessage], conversation: str | None) -> ChatTurn | None:
    """The turn of a request whose last assistant message is followed by tool results (the client ran
    the calls handed to it), or None for an ordinary request. Raises APIError for results that answer
    no call of that assistant message (stateless; with a conversation the agent checks its paused turn)."""
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    tail = messages[last + 1 :]
    results = tuple(r for r in (to_chat(m) for m in tail if m.role in ("tool", "function")) if r is not None)
    if not results:
        return None
    content = "\n\n".join(t for t in (m.text() for m in tail if m.role == "user") if t.strip())
    if conversation:
        return ChatTurn(content, None, results)
    history = [c for c in (to_chat(m) for m in messages[: last + 1]) if c is not None]
    check_results_answer_calls(history, results, "messages")
    return ChatTurn(content, history, results)


async def check_paused(backend: AgentBackend | None, session_key: str, results: tuple[ChatMessage, ...]) -> None:
    """With a conversation: results must answer the calls its paused turn waits for, and a new message
    must not arrive while one waits. Checked here so even a stream answers 400 before it starts."""
    if backend is None:
        return
    waiting = await backend.store.paused_turn(session_key, ())
    pending = sorted(waiting.pending_ids) if waiting is not None else []
    ids = sorted(r.tool_call_id or "" for r in results)
    if results and not waiting:
        raise APIError(400, f"No turn of this conversation waits for tool call ids {', '.join(ids)}: they are "
                       "unknown, or the turn expired.", param="messages", code="invalid_value")
    if not results and waiting:
        raise APIError(400, f"This conversation waits for the results of tool calls {', '.join(pending)}: "
                       "send them as role 'tool' messages first.", param="messages", code="invalid_value")
    if results and ids != pending:
        raise APIError(400, f"The tool results must answer exactly the calls {', '.join(pending)}; got "
                       f"{', '.join(ids)}.", param="messages", code="invalid_value")
