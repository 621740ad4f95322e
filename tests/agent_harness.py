"""The real runtime, built by build_runtime against the scripted upstream, for tests of the agent (no HTTP)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mofaclaw.agent.loop import AgentLoop
from mofaclaw.agent.tools.base import Tool
from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.config.models import Config
from mofaclaw.runtime import Runtime, build_runtime
from mofaclaw.session.base import SessionStore


class RecordingChannel:
    """The "test" channel: sorts the agent's outbound messages by request, as a channel would."""

    name = "test"

    def __init__(self) -> None:
        self.by_request: defaultdict[str, asyncio.Queue[OutboundMessage]] = defaultdict(asyncio.Queue)
        self.everything: asyncio.Queue[OutboundMessage] = asyncio.Queue()

    async def start(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> None:
        await self.by_request[message.request_id or ""].put(message)
        await self.everything.put(message)

    send_delta = send


@dataclass
class Harness:
    runtime: Runtime
    channel: RecordingChannel = field(default_factory=RecordingChannel)

    @property
    def bus(self) -> MessageBus:
        return self.runtime.bus

    @property
    def store(self) -> SessionStore:
        return self.runtime.store

    @property
    def agent(self) -> AgentLoop:
        return self.runtime.agent

    @property
    def workspace(self) -> Path:
        return self.runtime.tool_settings.workspace

    @property
    def by_request(self) -> defaultdict[str, asyncio.Queue[OutboundMessage]]:
        return self.channel.by_request

    @property
    def everything(self) -> asyncio.Queue[OutboundMessage]:
        return self.channel.everything

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


def scripted_config(upstream_url: str, *, window: int = 50, max_iterations: int = 10, timeout: float = 10.0,
                    max_retries: int = 2, max_concurrent: int = 16) -> Config:
    """A config whose model is the scripted upstream's."""
    return Config.model_validate({
        "agents": {"defaults": {"model": "scripted/scripted-model", "history_window": window,
                                "max_tool_iterations": max_iterations, "max_concurrent_turns": max_concurrent}},
        "providers": {"scripted": {"api_base": upstream_url, "api_key": "test-key", "timeout": timeout,
                                   "max_retries": max_retries}},
    })


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
    """The runtime of `mofaclaw agent`, home in tmp_path, running with `tools` beside the built-in ones."""
    config = scripted_config(upstream_url, window=window, max_iterations=max_iterations, timeout=timeout,
                             max_retries=max_retries, max_concurrent=max_concurrent)
    channel = RecordingChannel()
    runtime = build_runtime(config, home=tmp_path, extra_tools=tools, channels=[channel])
    async with runtime.running():
        yield Harness(runtime, channel)
