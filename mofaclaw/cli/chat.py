"""The interactive chat of `mofaclaw agent`: prompt with history, live streaming, Markdown, tool lines."""

from __future__ import annotations

import asyncio
import signal

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.spinner import Spinner
from rich.text import Text

from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.cli.agent import EXIT_WORDS
from mofaclaw.config import paths
from mofaclaw.runtime import Runtime


class ChatSession:
    def __init__(self, runtime: Runtime, session: str, markdown: bool) -> None:
        self.runtime = runtime
        self.session = session
        self.markdown = markdown
        self.console = Console()
        self.queue = runtime.bus.subscribe("cli")

    async def run(self) -> None:
        history_file = paths.cli_history()
        history_file.parent.mkdir(parents=True, exist_ok=True)
        prompt: PromptSession[str] = PromptSession(history=FileHistory(str(history_file)))
        self.console.print(f"[bold]mofaclaw[/] · model {self.runtime.model or 'none'} · session {self.session}\n"
                           "[dim]Ctrl-C cancels an answer; exit, /exit, Ctrl-D or Ctrl-C at the prompt quit.[/]")
        for warning in self.runtime.warnings:
            self.console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        loop_task = asyncio.create_task(self.runtime.agent.run())
        try:
            async with self.runtime.mcp.running():  # MCP servers: the eager ones connected before the first turn
                while True:
                    try:
                        text = await prompt.prompt_async("you › ")
                    except (EOFError, KeyboardInterrupt):
                        break
                    if text.strip().lower() in EXIT_WORDS:
                        break
                    if text.strip():
                        await self._turn(text)
        finally:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
            await self.runtime.aclose()
            self.console.print("[dim]bye[/]")

    async def _turn(self, text: str) -> None:
        message = InboundMessage("cli", "user", "direct", text, session_key_override=self.session)
        await self.runtime.bus.publish_inbound(message)
        waiter = asyncio.create_task(self._render(message.request_id))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, waiter.cancel)
        try:
            await waiter
        except asyncio.CancelledError:
            await self.runtime.bus.publish_inbound(InboundMessage(
                "cli", "user", "direct", "", request_id=message.request_id, kind="cancel"))
            self.console.print("[yellow]cancelled[/]")
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    async def _render(self, request_id: str) -> None:
        answer = ""
        spinner = Spinner("dots", Text(" thinking…", style="dim"))
        with Live(spinner, console=self.console, refresh_per_second=12, transient=False,
                  vertical_overflow="visible") as live:
            while True:
                out: OutboundMessage = await self.queue.get()
                if out.request_id != request_id:
                    continue  # a late message of a cancelled turn
                if out.kind == "progress":
                    live.console.print(Text(out.content, style="dim"))
                elif out.kind == "delta":
                    answer += out.content
                    live.update(Text(answer))
                elif out.kind == "message":
                    final = out.content or answer
                    live.update(Group(Markdown(final)) if self.markdown else Text(final))
                    return
                elif out.kind == "error":
                    live.update(Text(f"error: {out.content}", style="bold red"))
                    return
