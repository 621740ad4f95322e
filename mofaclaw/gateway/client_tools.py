"""The client's own tools on the wire: their validation, its tool results, and the calls handed back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mofaclaw.bus.reply import Answer
from mofaclaw.gateway.backend import AgentBackend
from mofaclaw.gateway.errors import APIError
from mofaclaw.types import ChatMessage, ClientTools, ToolCall, ToolChoice, ToolSpec

CHOICES = ("auto", "none", "required")
ARGUMENT_PIECE = 8  # characters of arguments per streamed delta, about two tokens as OpenAI sends them


def client_tools(specs: Sequence[ToolSpec], tool_choice: ToolChoice | None, parallel: bool | None,
                 backend: AgentBackend | None) -> ClientTools:
    """The request's tools once checked: no name the agent's own tools use, a model that can call them,
    a tool_choice naming a tool that exists. Raises APIError(400) naming the parameter."""
    if specs and backend is not None and not backend.can_call_tools:
        raise APIError(400, "This model cannot call tools (the embedded local model answers in plain text): "
                       "remove 'tools', or configure a tool-capable model.", param="tools",
                       code="unsupported_parameter")
    agent_tools = set(backend.tool_names()) if backend is not None else set()
    names = [spec.name for spec in specs]
    if clash := sorted(agent_tools.intersection(names)):
        raise APIError(400, f"Tool name(s) {', '.join(clash)} are the agent's own tools; rename yours.",
                       param="tools", code="invalid_value")
    if duplicate := sorted({n for n in names if names.count(n) > 1}):
        raise APIError(400, f"Tool name(s) {', '.join(duplicate)} appear more than once.", param="tools",
                       code="invalid_value")
    if isinstance(tool_choice, Mapping):
        chosen = (tool_choice.get("function") or {}).get("name") if tool_choice.get("type") == "function" else None
        if not isinstance(chosen, str) or chosen not in {*names, *agent_tools}:
            raise APIError(400, "tool_choice must be 'auto', 'none', 'required' or a function among the tools.",
                           param="tool_choice", code="invalid_value")
    elif tool_choice is not None and tool_choice not in CHOICES:
        raise APIError(400, f"tool_choice must be one of {', '.join(CHOICES)} or a named function.",
                       param="tool_choice", code="invalid_value")
    return ClientTools(tuple(specs), tool_choice, parallel)


def function_spec(tool: Mapping[str, Any], index: int, nested: bool) -> ToolSpec:
    """A `{"type": "function", ...}` tool as a ToolSpec; `nested`: Chat Completions' `function` object
    (the Responses API puts name and parameters on the tool itself)."""
    kind = tool.get("type")
    if kind != "function":
        raise APIError(400, f"tools[{index}] has type {kind!r}: only 'function' tools are supported "
                       "(the agent brings its own tools).", param="tools", code="invalid_value")
    body = tool.get("function") if nested else tool
    if not isinstance(body, Mapping) or not isinstance(body.get("name"), str) or not body["name"]:
        raise APIError(400, f"tools[{index}] needs a function name.", param="tools", code="invalid_value")
    parameters = body.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise APIError(400, f"tools[{index}].parameters must be a JSON schema object.", param="tools")
    return ToolSpec(body["name"], str(body.get("description") or ""), dict(parameters))


def check_results_answer_calls(history: Sequence[ChatMessage], results: Sequence[ChatMessage], param: str) -> None:
    """The client's tool results must answer the calls of the last assistant message, all of those not yet
    answered and nothing else (as OpenAI requires)."""
    last = max((i for i, m in enumerate(history) if m.role == "assistant"), default=-1)
    made = [call.id for call in history[last].tool_calls] if last >= 0 else []
    if unknown := [r.tool_call_id for r in results if r.tool_call_id not in made]:
        raise APIError(400, f"No assistant tool call with id {', '.join(map(str, unknown))} precedes its result.",
                       param=param, code="invalid_value")
    answered = {m.tool_call_id for m in history[last + 1 :] if m.role == "tool"} | {r.tool_call_id for r in results}
    if missing := [call_id for call_id in made if call_id not in answered]:
        raise APIError(400, f"The tool calls {', '.join(missing)} have no result: send one for each call.",
                       param=param, code="invalid_value")


def message_of(answer: Answer) -> dict[str, Any]:
    """The `message` of a non-streamed completion, with the calls the client is to run."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls:
        message["content"] = answer.content or None
        message["tool_calls"] = [_wire_call(call) for call in answer.tool_calls]
    return message


def call_deltas(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """The streamed `delta.tool_calls` of the calls: each opens with index, id, type and name, then its
    arguments follow in pieces, as OpenAI streams them."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        deltas.append({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                       "function": {"name": call.name, "arguments": ""}}]})
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                   for piece in argument_pieces(call.arguments)]
    return deltas


def argument_pieces(arguments: str) -> list[str]:
    return [arguments[i : i + ARGUMENT_PIECE] for i in range(0, len(arguments), ARGUMENT_PIECE)]


def _wire_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
