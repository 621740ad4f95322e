"""What every command shares: the --config option, config loading with clean errors, logging setup."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mofaclaw.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from mofaclaw.config.models import Config

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $MOFACLAW_CONFIG or $MOFACLAW_HOME/config.toml)."),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")]

# Help as click prints it, not typer's rich panels: typer.rich_utils imports rich, rich.markdown
# (markdown-it) and rich.traceback (pygments) to draw them, ~45% of `mofaclaw --help` (bench/README.md).
HELP_MARKUP = None


def command_group(help: str, short_help: str | None = None) -> typer.Typer:
    """A sub-command group (`mofaclaw cron ...`): help when run bare, plain help like the root's.
    `short_help` is its line in `mofaclaw --help` when `help` is too long for it (click cuts at ~64)."""
    return typer.Typer(help=help, short_help=short_help, no_args_is_help=True, rich_markup_mode=HELP_MARKUP)


# Made on first use: `mofaclaw gateway` never prints through rich unless it fails, and rich.console is
# ~5 MB and ~40 ms of imports it would otherwise carry.
@cache
def console() -> Console:
    from rich.console import Console

    return Console()


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr and a non-zero exit: never a traceback."""
    err_console().print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> tuple[Config, Path]:
    # Imported here: pydantic-settings costs a third of start-up, and `--help` never needs it.
    from mofaclaw.config.loader import load_config

    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        fail(str(exc), code=2)


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    # A plain handler: the gateway logs a line per request, and rich's handler costs far more per line.
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "uvicorn.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
