"""The `mofaclaw` command: a Typer app whose command groups live in their own modules."""

from __future__ import annotations

from typing import Annotated

import typer

from mofaclaw import __version__
from mofaclaw.cli import agent, cron, gateway, mcp, onboard, pairing, sessions, status
from mofaclaw.cli.common import HELP_MARKUP

app = typer.Typer(
    name="mofaclaw",
    help="mofaclaw: a personal AI agent in your terminal, behind an OpenAI-compatible API, and in your chats.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=HELP_MARKUP,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mofaclaw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """mofaclaw: one agent, reachable from everywhere."""


for module in (gateway, agent, onboard, status, sessions, cron, mcp, pairing):
    module.register(app)


def main() -> None:
    app()
