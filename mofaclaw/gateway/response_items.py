"""Responses API items <-> the agent's messages, and the response object built from a turn's Answer."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mofaclaw.bus.reply import Answer
from mofaclaw.gateway.response_schemas import (
    CreateResponseRequest,
    InputFunctionCallItem,
    InputFunctionCallOutputItem,
    InputItem,
    InputMessageItem,
)
from mofaclaw.types import ChatMessage, ToolCall, Usage


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


@dataclass(frozen=True, slots=True)
class ResponseInput:
    """A request's input as a turn: the client's `instructions` (system and developer messages too), the
    messages before the turn, the client's tool results and the new user text (may be empty on a resume)."""

    instructions: str
    history: list[ChatMessage]
    tool_results: tuple[ChatMessage, ...]
    content: str


def read_input(request: CreateResponseRequest, chain: Sequence[ChatMessage]) -> ResponseInput:
    items: Sequence[InputItem] = (
        [InputMessageItem(role="user", content=request.input)] if isinstance(request.input, str) else request.input)
    instructions = [request.instructions or ""]
    messages: list[ChatMessage] = []
    for item in items:
        if isinstance(item, InputMessageItem) and item.role in ("system", "developer"):
            instructions.append(item.text())
        elif isinstance(item, InputMessageItem):
            messages.append(ChatMessage(item.role, item.text()))  # type: ignore[arg-type]
        elif isinstance(item, InputFunctionCallItem):
            call = ToolCall(item.call_id, item.name, item.arguments)
            # A step's text and its calls come as separate items: one assistant message again.
            if messages and messages[-1].role == "assistant":
                last = messages.pop()
                messages.append(ChatMessage("assistant", last.content, (*last.tool_calls, call)))
            else:
                messages.append(ChatMessage("assistant", None, (call,)))
        elif isinstance(item, InputFunctionCallOutputItem):
            messages.append(ChatMessage("tool", item.text(), tool_call_id=item.call_id))
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    tail = messages[last + 1 :]
    results = tuple(m for m in tail if m.role == "tool")
    content = "\n\n".join(m.content or "" for m in tail if m.role == "user" and (m.content or "").strip())
    return ResponseInput("\n\n".join(i for i in instructions if i.strip()), [*chain, *messages[: last + 1]],
                         results, content)


def listed_input(request: CreateResponseRequest) -> list[dict[str, Any]]:
    """The input as input_items lists it: each item with an id and a status."""
    if isinstance(request.input, str):
        return [_message_item("user", request.input)]
    listed: list[dict[str, Any]] = []
    for item in request.input:
        if isinstance(item, InputMessageItem):
            listed.append(_message_item(item.role, item.text(), item.id))
        elif isinstance(item, InputFunctionCallItem):
            listed.append({"type": "function_call", "id": item.id or new_id("fc"), "call_id": item.call_id,
                           "name": item.name, "arguments": item.arguments, "status": "completed"})
        else:
            listed.append({"type": "function_call_output", "id": item.id or new_id("fco"), "call_id": item.call_id,
                           "output": item.text(), "status": "completed"})
    return listed


def _message_item(role: str, text: str, item_id: str | None = None) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    part: dict[str, Any] = {"type": kind, "text": text}
    if kind == "output_text":
        part["annotations"] = []
    return {"type": "message", "id": item_id or new_id("msg"), "role": role, "content": [part],
            "status": "completed"}


def message_output(text: str, item_id: str, status: str = "completed") -> dict[str, Any]:
    content = [output_text(text)] if status == "completed" else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_output(call: ToolCall, item_id: str, status: str = "completed") -> dict[str, Any]:
    arguments = call.arguments if status == "completed" else ""
    return {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name,
            "arguments": arguments, "status": status}


def outputs_of(answer: Answer, text: str | None = None) -> list[dict[str, Any]]:
    """The output items: the answer's text as a message (unless a paused step said nothing), then one
    function_call item per call the client is to run. `text`: what was streamed, when it was."""
    said = answer.content if text is None else text
    items = [message_output(said, new_id("msg"))] if said or not answer.tool_calls else []
    return items + [call_output(call, new_id("fc")) for call in answer.tool_calls]


def usage_of(usage: Usage) -> dict[str, Any]:
    return {"input_tokens": usage.prompt_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": usage.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens}


class ResponseObject:
    """The `response` object of one request, from in_progress to its end."""

    def __init__(self, request: CreateResponseRequest, model: str) -> None:
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.body: dict[str, Any] = {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": "in_progress",
            "completed_at": None, "error": None, "incomplete_details": None, "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens, "model": model, "output": [],
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": request.previous_response_id, "reasoning": {"effort": None, "summary": None},
            "store": request.store, "temperature": request.temperature, "text": {"format": {"type": "text"}},
            "tool_choice": request.tool_choice or "auto", "tools": request.tools, "top_p": request.top_p,
            "truncation": "disabled", "metadata": request.metadata or {},  # usage: once known
        }

    def snapshot(self) -> dict[str, Any]:
        return {**self.body, "output": list(self.body["output"])}

    def finish(self, answer: Answer, output: list[dict[str, Any]]) -> dict[str, Any]:
        """Completed (also when it ends in the client's function calls), or incomplete at the token limit."""
        incomplete = answer.finish_reason == "length" and not answer.tool_calls
        self.body.update(
            status="incomplete" if incomplete else "completed", output=output, usage=usage_of(answer.usage),
            completed_at=None if incomplete else int(time.time()),
            incomplete_details={"reason": "max_output_tokens"} if incomplete else None)
        return self.snapshot()

    def fail(self, message: str) -> dict[str, Any]:
        self.body.update(status="failed", error={"code": "server_error", "message": message})
        return self.snapshot()
