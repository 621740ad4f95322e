"""How a service runs an agent turn without importing the agent: a function the runtime injects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mofaclaw.bus.events import InboundMessage

# Runs one agent turn and returns its final answer; raises a MofaclawError subclass on failure.
# The runtime passes the agent loop's `ask`.
TurnFn = Callable[[InboundMessage], Awaitable[str]]
