"""Subagents: background turns with a reduced tool set whose result is announced back to the origin chat."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from pathlib import Path
from string import Template
from typing import Any

from mofaclaw.agent.runner import TurnRunner
from mofaclaw.agent.tools.base import ToolContext, ToolRegistry
from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage
from mofaclaw.errors import MofaclawError
from mofaclaw.providers.base import LLMProvider
from mofaclaw.tasks import TaskSet
from mofaclaw.templates import prompt
from mofaclaw.types import ChatMessage

log = logging.getLogger(__name__)

SUBAGENT_EXCLUDED_TOOLS = ("message", "spawn")


class SubagentManager:
    def __init__(self, provider: LLMProvider, runner: TurnRunner, bus: MessageBus, workspace: Path,
                 max_iterations: int) -> None:
        self.bus = bus
        self.workspace = workspace
        self._provider = provider
        self._base_runner = runner
        self._max_iterations = max_iterations
        self._tasks = TaskSet()

    def _runner(self) -> TurnRunner:
        # Built when first needed: the main runner's registry is complete only after wiring.
        tools: ToolRegistry = self._base_runner.tools.without(*SUBAGENT_EXCLUDED_TOOLS)
        settings = replace(self._base_runner.settings, max_tool_iterations=self._max_iterations)
        return TurnRunner(self._provider, tools, settings)

    def spawn(self, task: str, label: str, origin: ToolContext) -> str:
        task_id = uuid.uuid4().hex[:8]
        self._tasks.start(self._run(task_id, task, label, origin), name=f"subagent-{task_id}")
        return task_id

    async def aclose(self) -> None:
        await self._tasks.wait(cancel=True)

    async def _run(self, task_id: str, task: str, label: str, origin: ToolContext) -> None:
        system = Template(prompt("subagent")).safe_substitute(task=task, workspace=str(self.workspace))
        ctx = ToolContext(origin.channel, origin.chat_id, f"subagent:{task_id}")
        try:
            result = await self._runner().run([ChatMessage("system", system), ChatMessage("user", task)], ctx)
            status, text = "finished", result.content
        except MofaclawError as exc:
            status, text = "failed", str(exc)
        except Exception as exc:  # task boundary: report the failure to the chat rather than lose it
            log.exception("subagent %s crashed", task_id)
            status, text = "failed", f"{type(exc).__name__}: {exc}"
        announcement = Template(prompt("subagent_result")).safe_substitute(
            label=label, status=status, task=task, result=text)
        metadata: dict[str, Any] = {"subagent": task_id}
        await self.bus.publish_inbound(InboundMessage(
            origin.channel, "subagent", origin.chat_id, announcement,
            session_key_override=origin.session_key, metadata=metadata,
        ))
