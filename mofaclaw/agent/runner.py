"""The turn runner: the LLM <-> tools loop of one turn, as a stream of deltas ending in a TurnResult."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from string import Template

from mofaclaw.agent.tools.base import ToolContext, ToolRegistry
from mofaclaw.providers.base import ChatRequest, Finish, LLMProvider, TextDelta, ToolCallReady, UsageReport
from mofaclaw.templates import prompt
from mofaclaw.types import ChatMessage, ClientTools, GenerationOptions, ToolCall, Usage

DeltaSink = Callable[[str], Awaitable[None]]
ProgressSink = Callable[[ToolCall], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TurnResult:
    content: str
    # What the turn adds to the conversation after the user message: assistant tool calls,
    # tool results and the final answer, in order.
    messages: tuple[ChatMessage, ...]
    usage: Usage
    finish_reason: str  # "tool_calls" when the turn paused on calls of the client's tools
    pending: tuple[ToolCall, ...] = ()  # those calls: the client runs them and resumes the turn


@dataclass(frozen=True, slots=True)
class TurnSettings:
    model: str
    max_tool_iterations: int = 20
    defaults: GenerationOptions = field(default_factory=GenerationOptions)


async def _ignore(_: object) -> None:
    return None


class TurnRunner:
    def __init__(self, provider: LLMProvider, tools: ToolRegistry, settings: TurnSettings) -> None:
        self.provider = provider
        self.tools = tools
        self.settings = settings

    async def run(
        self,
        messages: Sequence[ChatMessage],
        ctx: ToolContext,
        options: GenerationOptions = GenerationOptions(),
        on_delta: DeltaSink = _ignore,
        on_tool: ProgressSink = _ignore,
        client: ClientTools = ClientTools(),
    ) -> TurnResult:
        conversation = list(messages)
        added: list[ChatMessage] = []
        usage = Usage()
        request_options = _merge(options, self.settings.defaults)
        specs = (*self.tools.specs(), *client.specs) if client.specs else self.tools.specs()
        tool_choice = client.tool_choice
        for _ in range(self.settings.max_tool_iterations):
            request = ChatRequest(self.settings.model, conversation, specs, request_options,
                                  tool_choice, client.parallel_tool_calls)
            # The client's choice is for the first step only: "required" or a named function on every
            # step would never let the model answer.
            tool_choice = None if tool_choice in (None, "none") else "auto"
            text: list[str] = []
            calls: list[ToolCall] = []
            finish = "stop"
            async for event in self.provider.stream(request):
                match event:
                    case TextDelta(delta):
                        text.append(delta)
                        await on_delta(delta)
                    case ToolCallReady(call):
                        calls.append(call)
                    case UsageReport(step_usage):
                        usage = usage + step_usage
                    case Finish(reason):
                        finish = reason
            content = "".join(text)
            if not calls:
                final = ChatMessage("assistant", content)
                added.append(final)
                return TurnResult(content, tuple(added), usage, finish)
            # The step keeps every call, the client's too, so the stored turn is in valid OpenAI order
            # once the client's results follow the agent's.
            step = ChatMessage("assistant", content or None, tuple(calls))
            pending = tuple(c for c in calls if c.name in client.names)
            results = await self._run_tools([c for c in calls if c not in pending], ctx, on_tool)
            conversation += [step, *results]
            added += [step, *results]
            if pending:
                return TurnResult(content, tuple(added), usage, "tool_calls", pending)
        content = Template(prompt("iteration_limit")).safe_substitute(
            limit=self.settings.max_tool_iterations
        ).strip()
        added.append(ChatMessage("assistant", content))
        return TurnResult(content, tuple(added), usage, "length")

    async def _run_tools(
        self, calls: list[ToolCall], ctx: ToolContext, on_tool: ProgressSink
    ) -> list[ChatMessage]:
        """Independent calls of one step run concurrently; results keep the calls' order."""
        if not calls:
            return []

        async def one(call: ToolCall) -> ChatMessage:
            await on_tool(call)
            output = await self.tools.execute(call, ctx)
            return ChatMessage("tool", output, tool_call_id=call.id, name=call.name)

        if len(calls) == 1:
            return [await one(calls[0])]
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(call)) for call in calls]
        return [task.result() for task in tasks]


def _merge(options: GenerationOptions, defaults: GenerationOptions) -> GenerationOptions:
    return GenerationOptions(
        temperature=options.temperature if options.temperature is not None else defaults.temperature,
        top_p=options.top_p if options.top_p is not None else defaults.top_p,
        max_tokens=options.max_tokens if options.max_tokens is not None else defaults.max_tokens,
        stop=options.stop or defaults.stop,
    )
