"""`mofaclaw agent`: talk to the agent in the terminal, interactively or one message at a time."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mofaclaw.cli.common import ConfigOption, VerboseOption, err_console, fail, load, setup_logging

if TYPE_CHECKING:
    from mofaclaw.runtime import Runtime

EXIT_WORDS = {"exit", "quit", "/exit", "/quit", ":q"}


def agent(
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Send one message, print the answer, exit ('-': stdin).")
    ] = None,
    session: Annotated[str, typer.Option("--session", "-s", help="Conversation to use.")] = "cli:direct",
    markdown: Annotated[bool, typer.Option("--markdown/--no-markdown", help="Render answers as Markdown.")] = True,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Chat with the agent: interactive by default, one-shot with -m."""
    cfg, _ = load(config)
    setup_logging(verbose, quiet=not verbose)
    import logging

    logging.getLogger("mofaclaw.mcp").setLevel(logging.DEBUG if verbose else logging.WARNING)  # "server x failed"

    import asyncio

    from mofaclaw.config import paths
    from mofaclaw.errors import MofaclawError
    from mofaclaw.runtime import build_runtime

    try:
        runtime = build_runtime(cfg, home=paths.mofaclaw_home())
    except MofaclawError as exc:
        fail(str(exc), code=2)
    if message is not None:
        text = sys.stdin.read() if message == "-" else message
        if not text.strip():
            fail("the message is empty", code=2)
        for warning in runtime.warnings:  # the interactive chat shows them in its header
            err_console().print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        ok = asyncio.run(_one_shot(runtime, text, session))
        raise typer.Exit(0 if ok else 1)
    from mofaclaw.cli.chat import ChatSession

    asyncio.run(ChatSession(runtime, session, markdown).run())


async def _one_shot(runtime: Runtime, text: str, session: str) -> bool:
    """Stream the answer to stdout; a failure is one line on stderr."""
    from mofaclaw.bus.events import InboundMessage
    from mofaclaw.errors import TurnFailed

    cli = runtime.reply_channel("cli")
    async with runtime.running():
        reply = await cli.ask(InboundMessage("cli", "user", "direct", text, session_key_override=session))
        streamed = False
        try:
            async for update in reply:
                if update.kind == "delta":
                    sys.stdout.write(update.text)
                    sys.stdout.flush()
                    streamed = True
            answer = await reply.final()
        except TurnFailed as exc:
            if streamed:
                sys.stdout.write("\n")
            err_console().print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            return False
        finally:
            reply.close()
        sys.stdout.write(("" if streamed else answer.content) + "\n")
        return True


def register(app: typer.Typer) -> None:
    app.command()(agent)
