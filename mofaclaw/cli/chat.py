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

from mofaclaw.bus.events import InboundMessage
from mofaclaw.bus.reply import Reply
from mofaclaw.cli.agent import EXIT_WORDS
from mofaclaw.config import paths
from mofaclaw.errors import TurnFailed
from mofaclaw.runtime import Runtime


class ChatSession:
    def __init__(self, runtime: Runtime, session: str, markdown: bool) -> None:
        self.runtime = runtime
        self.session = session
        self.markdown = markdown
        self.console = Console()
        self.cli = runtime.reply_channel("cli")

    async def run(self) -> None:
        history_file = paths.cli_history(self.runtime.home)
        history_file.parent.mkdir(parents=True, exist_ok=True)
        prompt: PromptSession[str] = PromptSession(history=FileHistory(str(history_file)))
        self.console.print(f"[bold]mofaclaw[/] · model {self.runtime.model or 'none'} · session {self.session}\n"
                           "[dim]Ctrl-C cancels an answer; exit, /exit, Ctrl-D or Ctrl-C at the prompt quit.[/]")
        for warning in self.runtime.warnings:
            self.console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        async with self.runtime.running():
            while True:
                try:
                    text = await prompt.prompt_async("you › ")
                except (EOFError, KeyboardInterrupt):
                    break
                if text.strip().lower() in EXIT_WORDS:
                    break
                if text.strip():
                    await self._turn(text)
        self.console.print("[dim]bye[/]")

    async def _turn(self, text: str) -> None:
        message = InboundMessage("cli", "user", "direct", text, session_key_override=self.session)
        reply = await self.cli.ask(message)
        waiter = asyncio.create_task(self._render(reply))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, waiter.cancel)
        try:
            await waiter
        except asyncio.CancelledError:
            self.cli.cancel(message)
            self.console.print("[yellow]cancelled[/]")
        finally:
            reply.close()
            loop.remove_signal_handler(signal.SIGINT)

    async def _render(self, reply: Reply) -> None:
        answer = ""
        spinner = Spinner("dots", Text(" thinking…", style="dim"))
        with Live(spinner, console=self.console, refresh_per_second=12, transient=False,
                  vertical_overflow="visible") as live:
            try:
                async for update in reply:
                    if update.kind == "progress":
                        live.console.print(Text(update.text, style="dim"))
                    else:
                        answer += update.text
                        live.update(Text(answer))
                final = (await reply.final()).content or answer
            except TurnFailed as exc:
                live.update(Text(f"error: {exc}", style="bold red"))
                return
            live.update(Group(Markdown(final)) if self.markdown else Text(final))
