"""The spawn tool: hands a task to a background subagent and returns at once."""

from __future__ import annotations

from typing import Any, Protocol

from mofaclaw.agent.tools.base import ToolContext


class Spawner(Protocol):
    def spawn(self, task: str, label: str, origin: ToolContext) -> str: ...


class SpawnTool:
    name = "spawn"
    description = (
        "Start a subagent in the background to work on a task on its own (research, long file work). "
        "Returns at once; the result is reported back to this chat when the subagent finishes."
    )
    parameters = {
        "type": "object",
        "properties": {
            "task": {"type": "string", "description": "What the subagent should do, completely described."},
            "label": {"type": "string", "description": "A short name for the task, shown to the user."},
        },
        "required": ["task"],
        "additionalProperties": False,
    }

    def __init__(self, manager: Spawner) -> None:
        self.manager = manager

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        label = args.get("label") or args["task"][:40]
        task_id = self.manager.spawn(args["task"], label, ctx)
        return f"Started subagent {task_id} ({label}). Its result will be reported to this chat when it finishes."
