"""An AgentLoop wired to the scripted upstream, for tests of the runtime (no HTTP server of ours)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mofaclaw.agent.context import ContextBuilder
from mofaclaw.agent.loop import AgentLoop, LoopSettings
from mofaclaw.agent.memory import MemoryConsolidator
from mofaclaw.agent.runner import TurnRunner, TurnSettings
from mofaclaw.agent.skills import SkillsLoader
from mofaclaw.agent.tools.base import Tool, ToolRegistry
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.providers.openai_compat import OpenAICompatProvider
from mofaclaw.providers.table import ProviderSettings
from mofaclaw.session.sqlite import SQLiteSessionStore


@dataclass
class Harness:
    bus: InMemoryBus
    store: SQLiteSessionStore
    agent: AgentLoop
    workspace: Path
    by_request: defaultdict[str, asyncio.Queue[OutboundMessage]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue))
    everything: asyncio.Queue[OutboundMessage] = field(default_factory=asyncio.Queue)

    async def route(self) -> None:
        """Sort the test channel's outbound messages by request, as a channel would."""
        queue = self.bus.subscribe("test")
        while True:
            out = await queue.get()
            await self.by_request[out.request_id or ""].put(out)
            await self.everything.put(out)

    async def send(self, content: str, chat_id: str = "c1", **kwargs: object) -> InboundMessage:
        message = InboundMessage("test", "u1", chat_id, content, **kwargs)  # type: ignore[arg-type]
        await self.bus.publish_inbound(message)
        return message

    async def collect(self, request_id: str, timeout: float = 10.0) -> list[OutboundMessage]:
        """Every outbound message of one turn, up to its final message or error."""
        seen: list[OutboundMessage] = []
        async with asyncio.timeout(timeout):
            while True:
                out = await self.by_request[request_id].get()
                seen.append(out)
                if out.kind in ("message", "error"):
                    return seen


@asynccontextmanager
async def running_agent(
    upstream_url: str,
    tmp_path: Path,
    tools: Sequence[Tool] = (),
    *,
    window: int = 50,
    max_iterations: int = 10,
    timeout: float = 10.0,
    max_retries: int = 2,
    max_concurrent: int = 16,
) -> AsyncIterator[Harness]:
    workspace = tmp_path / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    bus = InMemoryBus()
    store = SQLiteSessionStore(tmp_path / "sessions.db")
    provider = OpenAICompatProvider(ProviderSettings(
        name="scripted", api_key="test-key", api_base=upstream_url, timeout=timeout, max_retries=max_retries))
    runner = TurnRunner(provider, ToolRegistry(tools), TurnSettings(model="scripted-model",
                                                                    max_tool_iterations=max_iterations))
    context = ContextBuilder(workspace, SkillsLoader(workspace))
    memory = MemoryConsolidator(provider, "scripted-model", store, workspace)
    agent = AgentLoop(bus, runner, store, context, memory, LoopSettings(window, max_concurrent))
    harness = Harness(bus, store, agent, workspace)
    tasks = [asyncio.create_task(agent.run()), asyncio.create_task(harness.route())]
    try:
        yield harness
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await provider.aclose()
        await store.close()
