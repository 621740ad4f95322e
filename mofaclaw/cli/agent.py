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

    from mofaclaw.errors import MofaclawError
    from mofaclaw.runtime import build_runtime

    try:
        runtime = build_runtime(cfg)
    except MofaclawError as exc:
        fail(str(exc), code=2)
    if message is not None:
        text = sys.stdin.read() if message == "-" else message
        if not text.strip():
            fail("the message is empty", code=2)
        ok = asyncio.run(_one_shot(runtime, text, session))
        raise typer.Exit(0 if ok else 1)
    from mofaclaw.cli.chat import ChatSession

    asyncio.run(ChatSession(runtime, session, markdown).run())


async def _one_shot(runtime: Runtime, text: str, session: str) -> bool:
    """Stream the answer to stdout; a failure is one line on stderr."""
    import asyncio

    from mofaclaw.bus.events import InboundMessage

    queue = runtime.bus.subscribe("cli")
    loop_task = asyncio.create_task(runtime.agent.run())
    try:
        async with runtime.mcp.running():  # MCP servers: the eager ones connected before the turn
            await runtime.bus.publish_inbound(
                InboundMessage("cli", "user", "direct", text, session_key_override=session))
            streamed = False
            while True:
                out = await queue.get()
                if out.kind == "delta":
                    sys.stdout.write(out.content)
                    sys.stdout.flush()
                    streamed = True
                elif out.kind == "message":
                    sys.stdout.write(("" if streamed else out.content) + "\n")
                    return True
                elif out.kind == "error":
                    if streamed:
                        sys.stdout.write("\n")
                    err_console.print(f"[bold red]error:[/] {out.content}", highlight=False, soft_wrap=True)
                    return False
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        await runtime.aclose()


def register(app: typer.Typer) -> None:
    app.command()(agent)
