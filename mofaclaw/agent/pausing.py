"""Turns that pause on the client's tools: where a resumed turn starts, and keeping the paused part aside."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from mofaclaw.bus.events import InboundMessage
from mofaclaw.errors import TurnErrorCode, TurnFailed
from mofaclaw.session.base import PausedTurnStore
from mofaclaw.session.paused import PausedTurn
from mofaclaw.types import ChatMessage, ToolCall


@dataclass(frozen=True, slots=True)
class TurnStart:
    """`history` precedes the turn; `turn` is the turn so far (a resumed one: its user message, its
    steps, the agent's tool results and now the client's). `taken` is the paused turn resumed, if any."""

    history: list[ChatMessage]
    turn: list[ChatMessage]
    taken: PausedTurn | None = None


class PausedTurns:
    def __init__(self, store: PausedTurnStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl

    async def start(self, message: InboundMessage, history: Sequence[ChatMessage],
                    waiting: PausedTurn | None = None) -> TurnStart:
        """Where `message`'s turn starts; `waiting` is the conversation's paused turn, read with its
        history. Raises TurnFailed(INVALID_REQUEST) for results no paused turn waits for, or for a new
        message to a conversation that waits for results."""
        results = message.tool_results
        ids = [r.tool_call_id or "" for r in results]
        if message.persist:
            return await self._conversation(message.session_key, list(history), results, ids, waiting)
        if not results:
            return TurnStart(list(history), [])
        return await self._stateless(list(history), results, ids)

    async def _conversation(self, key: str, history: list[ChatMessage], results: Sequence[ChatMessage],
                            ids: list[str], waiting: PausedTurn | None) -> TurnStart:
        if not results:
            if waiting is not None:
                raise _invalid(f"This conversation waits for the results of tool calls {_names(waiting.pending)}: "
                               "send them as role 'tool' messages first (or let them expire).")
            return TurnStart(history, [])
        taken = await self.store.take_paused_turn(key, ids)
        if taken is None:
            raise _invalid(f"No turn of this conversation waits for tool call ids {', '.join(ids)}: "
                           "they are unknown, or the turn expired.")
        if set(ids) != taken.pending_ids:
            await self.store.restore_paused_turn(taken)
            raise _invalid(f"The tool results must answer exactly the calls {_names(taken.pending)}; "
                           f"got ids {', '.join(ids)}.")
        return TurnStart(history, [*taken.messages, *_in_order(results, taken.pending)], taken)

    async def _stateless(self, history: list[ChatMessage], results: Sequence[ChatMessage],
                         ids: list[str]) -> TurnStart:
        start = max((i for i, m in enumerate(history) if m.role == "user"), default=0)
        taken = await self.store.take_paused_turn(None, ids)
        # The client resent only what it saw of the turn; the stored turn also holds the agent's own
        # calls and results, so it replaces the client's copy from the turn's user message on.
        if (taken is not None and taken.messages and taken.messages[0].role == "user"
                and start < len(history) and history[start].content == taken.messages[0].content):
            turn = list(taken.messages)
        else:
            turn = history[start:]
        calls = [call for m in turn if m.role == "assistant" for call in m.tool_calls]
        return TurnStart(history[:start], [*turn, *_in_order(results, calls)], taken)

    async def pause(self, message: InboundMessage, turn: Sequence[ChatMessage], pending: Sequence[ToolCall]) -> None:
        key = message.session_key if message.persist else None
        await asyncio.shield(self.store.pause_turn(key, pending, turn, self.ttl))

    async def restore(self, start: TurnStart) -> None:
        """The resumed turn failed: it waits again for the same results, until it expires."""
        if start.taken is not None:
            await asyncio.shield(self.store.restore_paused_turn(start.taken))


def _in_order(results: Sequence[ChatMessage], pending: Sequence[ToolCall]) -> list[ChatMessage]:
    order = {call.id: i for i, call in enumerate(pending)}
    names = {call.id: call.name for call in pending}
    ordered = sorted(results, key=lambda r: order.get(r.tool_call_id or "", len(order)))
    return [ChatMessage("tool", r.content, tool_call_id=r.tool_call_id, name=r.name or names.get(r.tool_call_id or ""))
            for r in ordered]


def _names(calls: Sequence[ToolCall]) -> str:
    return ", ".join(f"{c.id} ({c.name})" for c in calls)


def _invalid(text: str) -> TurnFailed:
    return TurnFailed(text, TurnErrorCode.INVALID_REQUEST, 400)
