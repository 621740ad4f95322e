"""`mofaclaw sessions`: list, show and delete stored conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from mofaclaw.cli.common import ConfigOption, command_group, console, fail, load

sessions_app = command_group("List, show and delete conversations.")


def _on_store(cfg, work):  # type: ignore[no-untyped-def]
    """`work(store)` on the configured store (SQLite, or the cluster's PostgreSQL), closed after;
    a store that cannot be built or reached is one line."""
    import asyncio  # here, not at the top: `mofaclaw --help` never needs it

    from mofaclaw.backends import make_store
    from mofaclaw.config import paths
    from mofaclaw.errors import MofaclawError

    async def run():  # type: ignore[no-untyped-def]
        store = make_store(cfg.session, paths.mofaclaw_home())
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except MofaclawError as exc:
        fail(str(exc), 2)


@sessions_app.command("list")
def list_sessions(config: ConfigOption = None) -> None:
    """Every conversation: key, number of messages, last activity."""
    from rich.table import Table

    cfg, _ = load(config)
    infos = _on_store(cfg, lambda s: s.list_sessions())
    if not infos:
        console().print("No conversations yet.")
        return
    table = Table("Key", "Messages", "Last activity")
    for info in infos:
        table.add_row(info.key, str(info.message_count),
                      datetime.fromtimestamp(info.updated_at).strftime("%Y-%m-%d %H:%M"))
    console().print(table)


@sessions_app.command("show")
def show(key: str, config: ConfigOption = None) -> None:
    """Print one conversation."""
    cfg, _ = load(config)
    stored = _on_store(cfg, lambda s: s.messages(key))
    if not stored:
        fail(f"no conversation named {key!r} (see: mofaclaw sessions list)")
    for item in stored:
        m = item.message
        when = datetime.fromtimestamp(item.created_at).strftime("%Y-%m-%d %H:%M")
        if m.tool_calls:
            calls = ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls)
            console().print(f"[dim]{when}[/] [bold]{m.role}[/] → {calls}", highlight=False)
        if m.content:
            console().print(f"[dim]{when}[/] [bold]{m.role}[/]: {m.content}", highlight=False)


@sessions_app.command("delete")
def delete(
    key: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete one conversation."""
    cfg, _ = load(config)
    if not yes and not typer.confirm(f"Delete conversation {key!r}?"):
        raise typer.Exit(1)
    if not _on_store(cfg, lambda s: s.delete(key)):
        fail(f"no conversation named {key!r}")
    console().print(f"Deleted {key}.")


def register(app: typer.Typer) -> None:
    app.add_typer(sessions_app, name="sessions")
