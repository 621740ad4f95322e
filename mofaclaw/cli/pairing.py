"""`mofaclaw pairing`: see who asked to talk to the agent, admit them by their code, or revoke them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from mofaclaw.cli.common import command_group, console, fail

if TYPE_CHECKING:
    from mofaclaw.channels.pairing import PairingStore

pairing_app = command_group("Admit people who asked for access on a chat channel (deny by default).",
                            short_help="Admit people who asked for access on a chat channel.")


def _store() -> PairingStore:
    # Imported here: `--help` stays fast.
    from mofaclaw.channels.pairing import PairingStore
    from mofaclaw.channels.state import pairing_db
    from mofaclaw.config.paths import mofaclaw_home

    return PairingStore(pairing_db(mofaclaw_home()))


def _ago(when: float) -> str:
    seconds = max(0, int(time.time() - when))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


@pairing_app.command("list")
def list_pairings() -> None:
    """Pending codes (valid for an hour) and the senders already admitted."""
    from rich.table import Table

    store = _store()
    pending, approved = store.pending(), store.approved()
    if not pending and not approved:
        console().print("No pairing requests and nobody approved yet.")
        return
    table = Table(show_header=True)
    for column in ("Status", "Channel", "Sender", "Code", "When"):
        table.add_column(column)
    for p in pending:
        table.add_row("pending", p.channel, p.who, p.code, _ago(p.since))
    for p in approved:
        table.add_row("approved", p.channel, p.who, "", _ago(p.since))
    console().print(table)


@pairing_app.command()
def approve(code: Annotated[str, typer.Argument(help="The code the sender was given.")]) -> None:
    """Admit the sender who was given CODE: their next message reaches the agent (no restart needed)."""
    pairing = _store().approve(code)
    if pairing is None:
        fail(f"no pending pairing with code {code!r} (codes expire after an hour; see `mofaclaw pairing list`)")
    console().print(f"Approved {pairing.channel} sender {pairing.who}.", highlight=False)


@pairing_app.command()
def revoke(
    sender: Annotated[str, typer.Argument(help="The sender's id or @username.")],
    channel: Annotated[str | None, typer.Option("--channel", help="Only on this channel.")] = None,
) -> None:
    """Take an approved sender's access away; their messages stop reaching the agent at once."""
    removed = _store().revoke(sender, channel)
    if not removed:
        fail(f"no approved sender {sender!r}{f' on {channel}' if channel else ''} (see `mofaclaw pairing list`)")
    for p in removed:
        console().print(f"Revoked {p.channel} sender {p.who}.", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(pairing_app, name="pairing")
