"""AgentLoop: consumes the bus and runs each message as its own turn, one at a time per session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from mofaclaw.agent.commands import CommandTable
from mofaclaw.agent.context import ContextBuilder
from mofaclaw.agent.memory import MemoryConsolidator
from mofaclaw.agent.pausing import PausedTurns
from mofaclaw.agent.runner import TurnRunner
from mofaclaw.agent.tools.base import ToolContext
from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.errors import MofaclawError, ProviderError, TurnErrorCode, TurnFailed, turn_error_code
from mofaclaw.session.base import SessionStore
from mofaclaw.tasks import TaskSet
from mofaclaw.types import ChatMessage, ToolCall

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoopSettings:
    history_window: int = 50
    max_concurrent_turns: int = 256
    client_tool_timeout: float = 600.0  # seconds a turn paused on the client's tools waits for results


class AgentLoop:
    def __init__(
        self,
        bus: MessageBus,
        runner: TurnRunner,
        store: SessionStore,
        context: ContextBuilder,
        memory: MemoryConsolidator | None = None,
        settings: LoopSettings = LoopSettings(),
    ) -> None:
        self.bus = bus
        self.runner = runner
        self.store = store
        self.context = context
        self.memory = memory
        self.settings = settings
        self.paused = PausedTurns(store, settings.client_tool_timeout)
        self.commands = CommandTable()
        self.commands.add("new", "start a new conversation (the old one is kept and remembered)", self._new)
        self._slots = asyncio.Semaphore(settings.max_concurrent_turns)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._background = TaskSet()  # memory consolidation after a turn

    async def run(self) -> None:
        """Serve the bus until cancelled. Every turn is a task the loop keeps and awaits."""
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    message = await self.bus.consume_inbound()
                    if message.kind == "cancel":
                        self._cancel(message.request_id)
                        continue
                    task = tg.create_task(self._serve(message))
                    self._running[message.request_id] = task
                    task.add_done_callback(lambda _, rid=message.request_id: self._running.pop(rid, None))
        finally:
            # Stopping: do not hold shutdown for a consolidation's LLM call (its file writes are
            # atomic, so a cancelled one leaves the old memory intact).
            await self.drain(cancel=True)

    async def drain(self, cancel: bool = False) -> None:
        """Wait for background work (memory consolidation), or cancel it, so no task is left behind."""
        await self._background.wait(cancel=cancel)

    async def ask(self, message: InboundMessage) -> str:
        """Run one turn directly (cron, heartbeat, one-shot CLI): the answer, or a MofaclawError."""
        async with self.bus.turn(message) as go, self._slots:
            if not go:
                raise TurnFailed("The turn was cancelled before it started.", TurnErrorCode.INVALID_REQUEST)
            return await self._turn(message, publish=False)

    def _cancel(self, request_id: str) -> None:
        task = self._running.get(request_id)
        if task is not None:
            log.info("cancelling turn %s", request_id)
            task.cancel()

    async def _serve(self, message: InboundMessage) -> None:
        try:
            async with self.bus.turn(message) as go, self._slots:
                if go:  # else: cancelled before it started, or already started on a replica that died
                    await self._turn(message, publish=True)
        except MofaclawError as exc:
            log.warning("turn %s failed: %s", message.request_id, exc)
            await self.bus.publish_outbound(_error(message, exc))
        except Exception as exc:  # task boundary: one broken turn must not stop the loop
            log.exception("turn %s crashed", message.request_id)
            await self.bus.publish_outbound(_error(message, exc))

    async def _turn(self, message: InboundMessage, publish: bool) -> str:
        command = self.commands.match(message.content)
        if command is not None:
            reply = await command.handler(message.session_key)
            if publish:
                await self.bus.publish_outbound(_reply(message, reply))
            return reply

        window = self.settings.history_window
        created_at: float | None = None  # of the stored conversation, as this turn found it
        if message.history is not None:
            history, waiting = list(message.history), None
        else:
            recent = await self.store.recent(message.session_key, window)
            history, waiting, created_at = recent.history, recent.paused, recent.created_at
        start = await self.paused.start(message, history, waiting)
        # A turn resumed with the client's tool results may come without a new user message.
        content = message.content if message.content or not message.tool_results else None
        messages = await self.context.build(
            [*start.history, *start.turn], content, channel=message.channel,
            chat_id=message.chat_id, instructions=message.instructions,
        )
        ctx = ToolContext(message.channel, message.chat_id, message.session_key, message.request_id)

        async def on_delta(text: str) -> None:
            await self.bus.publish_outbound(_reply(message, text, kind="delta"))

        async def on_tool(call: ToolCall) -> None:
            await self.bus.publish_outbound(_reply(message, describe_call(call), kind="progress",
                                                   tool_name=call.name, tool_summary=summarize_arguments(call)))

        try:
            if publish and message.live_updates:
                result = await self.runner.run(messages, ctx, message.options, on_delta, on_tool,
                                               message.client_tools)
            else:
                result = await self.runner.run(messages, ctx, message.options, client=message.client_tools)
        except BaseException:
            await self.paused.restore(start)
            raise
        user = [ChatMessage("user", content)] if content is not None else []
        turn = [*start.turn, *user, *result.messages]
        if result.pending:
            # Nothing reaches the conversation until the client's results come back and the turn ends.
            await self.paused.pause(message, turn, result.pending)
        elif message.persist:
            # Shielded: once the commit starts, a cancel must not leave us unsure whether it landed.
            stored = await asyncio.shield(self.store.append_turn(message.session_key, turn, created_at=created_at))
            if not stored:  # the answer still reaches whoever asked; the conversation stays deleted
                log.info("conversation %s was deleted while its turn ran; the turn is not stored", message.session_key)
            elif self.memory is not None and len(history) >= window:
                self._in_background(self.memory.consolidate(message.session_key, keep=window))
        if publish:
            await self.bus.publish_outbound(
                _reply(message, result.content, usage=result.usage, finish_reason=result.finish_reason,
                       tool_calls=result.pending, messages=(*start.history, *turn))
            )
        return result.content

    async def _new(self, session_key: str) -> str:
        archived = await self.store.archive(session_key)
        if archived and self.memory is not None:
            self._in_background(self.memory.consolidate(archived, keep=0))
        return "Started a new conversation. The previous one is kept, and what matters is remembered."

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        # A failed consolidation is logged by the TaskSet and does not affect the chat.
        self._background.start(work, name="consolidation")


def describe_call(call: ToolCall) -> str:
    """One line for a tool call, e.g. "↳ read_file notes.md"."""
    return f"↳ {call.name} {summarize_arguments(call)}".rstrip()


def summarize_arguments(call: ToolCall) -> str:
    """Its first scalar argument, on one line, at most 60 characters: enough to tell calls apart."""
    try:
        args = call.parsed_arguments()
    except ValueError:
        args = {}
    first = next((str(v) for v in args.values() if isinstance(v, str | int | float)), "")
    first = first.replace("\n", " ")
    if len(first) > 60:
        first = first[:57] + "..."
    return first


def _reply(message: InboundMessage, content: str, kind: Any = "message", **extra: Any) -> OutboundMessage:
    return OutboundMessage(
        channel=message.channel, chat_id=message.chat_id, content=content, kind=kind,
        request_id=message.request_id, metadata=message.metadata, reply_to=message.reply_to, **extra,
    )


def _error(message: InboundMessage, exc: Exception) -> OutboundMessage:
    status = exc.status if isinstance(exc, ProviderError) else None
    text = str(exc) if isinstance(exc, MofaclawError) else "internal error: the turn failed; see the logs"
    return _reply(message, text, kind="error", error_code=turn_error_code(exc), status=status)
