"""What the gateway needs from the agent's side besides the bus: its store, its tool names, its abilities."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from mofaclaw.session.base import SessionStore


@dataclass(frozen=True, slots=True)
class AgentBackend:
    """`store`: stored responses and paused turns; `tool_names`: the agent's tools now (the registry can
    change while running); `can_call_tools`: False for a model that cannot call tools (the small local one)."""

    store: SessionStore
    tool_names: Callable[[], Collection[str]]
    can_call_tools: bool = True
