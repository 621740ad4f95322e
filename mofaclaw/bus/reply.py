"""Reply: what one request id gets back (live updates, then the answer or a typed error), and the channel
that routes the agent's outbound messages to the open replies of senders who wait (the HTTP API, the terminal)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.errors import TurnErrorCode, TurnFailed
from mofaclaw.tasks import TaskSet
from mofaclaw.types import ChatMessage, ToolCall, Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Update:
    """Something shown while the turn runs: a piece of the answer, or a line about a tool being run."""

    kind: Literal["delta", "progress"]
    text: str
    tool_name: str | None = None  # progress: the tool being run, and a short summary of its arguments
    tool_summary: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """The end of a successful turn."""

    content: str
    usage: Usage
    finish_reason: str  # "tool_calls" when the turn paused on the client's tools
    tool_calls: tuple[ToolCall, ...] = ()  # the client's calls to run, when paused
    messages: tuple[ChatMessage, ...] = ()  # the whole conversation of the turn, without the system prompt


class Reply:
    """The outbound side of one turn, fed by whoever routes the bus's messages to it.

    `async for update in reply` yields the updates until the turn ends; `await reply.final()` returns
    the Answer (skipping updates not yet read) or raises TurnFailed. `await reply.next()` reads one
    event and, unlike the iterator, may be wrapped in a timeout and called again.
    """

    def __init__(self, request_id: str, on_close: Callable[[str], None] = lambda _: None) -> None:
        self.request_id = request_id
        # Unbounded on purpose: one turn's output is finite, and a slow reader must not stall the
        # dispatcher that serves every other reply.
        self._queue: asyncio.Queue[OutboundMessage] = asyncio.Queue()
        self._end: OutboundMessage | None = None
        self._on_close = on_close

    def put(self, message: OutboundMessage) -> None:
        self._queue.put_nowait(message)

    @property
    def done(self) -> bool:
        return self._end is not None

    async def next(self) -> Update | Answer:
        """The next update, or the Answer once the turn ended; raises TurnFailed if it failed."""
        while self._end is None:
            message = await self._queue.get()
            if message.kind == "delta" or message.kind == "progress":
                return Update(message.kind, message.content, message.tool_name, message.tool_summary)
            self._end = message
        return _ending(self._end)

    async def __aiter__(self) -> AsyncIterator[Update]:
        while not self.done:
            event = await self.next()
            if isinstance(event, Update):
                yield event

    async def final(self) -> Answer:
        while True:
            event = await self.next()
            if isinstance(event, Answer):
                return event

    def close(self) -> None:
        """Stop receiving: later messages for this request id are dropped by its router."""
        self._on_close(self.request_id)


def _ending(message: OutboundMessage) -> Answer:
    if message.kind == "error":
        raise TurnFailed(message.content, message.error_code or TurnErrorCode.INTERNAL_ERROR, message.status)
    return Answer(message.content, message.usage or Usage(), message.finish_reason or "stop",
                  message.tool_calls, message.messages)


class ReplyChannel:
    """`reply = await channel.ask(message)` publishes a message and returns its Reply; the channel
    manager hands this channel the agent's outbound messages, which it routes to the open Reply."""

    def __init__(self, name: str, bus: MessageBus) -> None:
        self.name = name
        self._bus = bus
        self._open: dict[str, Reply] = {}
        self._cancels = TaskSet()

    async def ask(self, message: InboundMessage) -> Reply:
        """Publish `message` (of this channel) and return its Reply; close the Reply when done with it."""
        reply = Reply(message.request_id, self._forget)
        self._open[message.request_id] = reply  # opened first, so no early delta is missed
        try:
            await self._bus.publish_inbound(message)
        except BaseException:
            reply.close()
            raise
        return reply

    def cancel(self, message: InboundMessage) -> None:
        """Ask the agent to stop the turn of `message`. Safe to call from a cancelled task's cleanup:
        the publish runs as a task this channel keeps and awaits when it stops."""
        self._open.pop(message.request_id, None)
        cancel = InboundMessage(message.channel, message.sender_id, message.chat_id, "",
                                request_id=message.request_id, kind="cancel")
        self._cancels.start(self._bus.publish_inbound(cancel))

    def shutdown(self) -> None:
        """End every open reply now with an error, so whoever waits for one can answer and go."""
        for request_id, reply in list(self._open.items()):
            reply.put(OutboundMessage(self.name, "", "The gateway is shutting down; try again shortly.",
                                      kind="error", request_id=request_id, error_code=TurnErrorCode.SHUTTING_DOWN))

    def _forget(self, request_id: str) -> None:
        self._open.pop(request_id, None)

    async def start(self) -> None:
        await asyncio.Event().wait()  # nothing to poll: messages come in through ask()

    async def stop(self) -> None:
        await self._cancels.wait()

    async def send(self, message: OutboundMessage) -> None:
        reply = self._open.get(message.request_id or "")
        if reply is None:
            # The client went away, or nobody waits for this message (a subagent's late report to a
            # conversation with no open request): nobody can receive it.
            log.info("%s: no open request %s for a %s message; dropped", self.name, message.request_id, message.kind)
            return
        reply.put(message)

    async def send_delta(self, message: OutboundMessage) -> None:
        reply = self._open.get(message.request_id or "")
        if reply is not None:
            reply.put(message)
