"""The Tool protocol, the per-call context, and the registry that validates and runs calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mofaclaw.errors import ToolError
from mofaclaw.types import ToolCall, ToolSpec

if TYPE_CHECKING:
    import jsonschema

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who a call is for. Passed to every run, never stored on a tool: two sessions run at once."""

    channel: str
    chat_id: str
    session_key: str
    request_id: str | None = None


class Tool(Protocol):
    name: str
    description: str
    parameters: Mapping[str, Any]  # JSON schema of the arguments object

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        """The result text for the model. Raise ToolError for a failure the model should read."""
        ...


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._specs: tuple[ToolSpec, ...] | None = None
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        self._tools[tool.name] = tool
        self._validators.pop(tool.name, None)
        self._specs = None

    def unregister(self, name: str) -> None:
        """Remove a tool (a server took it away); a name not registered is ignored."""
        if self._tools.pop(name, None) is not None:
            self._validators.pop(name, None)
            self._specs = None

    def _validator(self, name: str) -> jsonschema.protocols.Validator:
        """Built on the tool's first call: jsonschema is ~3 MB and ~0.1 s of start-up that a gateway
        whose model calls no tool yet does not need."""
        validator = self._validators.get(name)
        if validator is None:
            import jsonschema

            validator = self._validators[name] = jsonschema.Draft202012Validator(dict(self._tools[name].parameters))
        return validator

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> tuple[ToolSpec, ...]:
        """The same tuple on every call until a tool is registered or removed: providers may cache its wire form."""
        if self._specs is None:
            self._specs = tuple(ToolSpec(t.name, t.description, t.parameters) for t in self._tools.values())
        return self._specs

    def without(self, *names: str) -> ToolRegistry:
        return ToolRegistry(t for n, t in self._tools.items() if n not in names)

    async def execute(self, call: ToolCall, ctx: ToolContext) -> str:
        """Run one call. A failure comes back as text starting with "Error:", never as an exception,
        except cancellation, which must stop the turn."""
        tool = self._tools.get(call.name)
        if tool is None:
            return f"Error: unknown tool '{call.name}'. Available tools: {', '.join(self._tools)}"
        try:
            args = call.parsed_arguments()
        except ValueError as exc:
            return f"Error: arguments for {call.name} are not a valid JSON object: {exc}"
        problem = next(iter(self._validator(call.name).iter_errors(args)), None)
        if problem is not None:
            where = ".".join(str(p) for p in problem.absolute_path) or "arguments"
            return f"Error: invalid arguments for {call.name}: {where}: {problem.message}"
        try:
            return await tool.run(args, ctx)
        except asyncio.CancelledError:
            raise
        except ToolError as exc:
            log.info("tool %s failed: %s", call.name, exc)
            return f"Error: {exc}"
        except Exception as exc:  # a tool's bug must not kill the turn
            log.exception("tool %s crashed", call.name)
            return f"Error: {call.name} failed: {type(exc).__name__}: {exc}"
