"""`mofaclaw status`: what mofaclaw will use, at a glance, without showing any secret."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mofaclaw.cli.common import ConfigOption, console, load

if TYPE_CHECKING:
    from mofaclaw.config.models import Config


def status(config: ConfigOption = None) -> None:
    """Show the config, data dir, workspace, model, providers, gateway address and channels."""
    from rich.table import Table

    from mofaclaw.agent.tools.shell import network_status, sandbox_status
    from mofaclaw.config import paths
    from mofaclaw.errors import ConfigError
    from mofaclaw.providers.table import KNOWN_PROVIDERS, resolve_provider, split_model
    from mofaclaw.runtime import default_model, provider_settings, tool_settings, workspace_of

    cfg, path = load(config)
    table = Table(title="mofaclaw status", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Config", f"{path} ({'exists' if path.exists() else 'not found: defaults in use'})")
    table.add_row("Data dir", str(paths.mofaclaw_home()))
    workspace = workspace_of(cfg, paths.mofaclaw_home())
    table.add_row("Workspace", f"{workspace}{'' if workspace.exists() else ' (not created yet: mofaclaw onboard)'}")
    model = default_model(cfg)
    table.add_row("Model", model or "none (configure agents.defaults.model or install mofaclaw[local])")

    configured = provider_settings(cfg)
    names = list(configured)
    if model:
        try:
            name, _ = split_model(model)
            if name not in names:
                names.append(name)
        except ConfigError as exc:
            table.add_row("Model error", str(exc))
    for name in names:
        try:
            s = resolve_provider(name, configured)
        except ConfigError as exc:
            table.add_row(f"Provider {name}", f"[red]{exc}[/]")
            continue
        if s.kind == "local":
            detail = f"local model ({s.model_path or 'bundled SmolLM2-135M'})"
        elif s.api_key:
            detail = f"key set · {s.api_base}"
        elif s.needs_key:
            detail = f"[yellow]no key[/] (set {s.key_env or f'providers.{name}.api_key'}) · {s.api_base}"
        else:
            detail = f"no key needed · {s.api_base}"
        known = "" if name in KNOWN_PROVIDERS else " (custom)"
        table.add_row(f"Provider {name}{known}", detail)

    g = cfg.gateway
    auth = f"{len(g.api_keys)} API key(s)" if g.api_keys else "no API keys (loopback only)"
    table.add_row("Gateway", f"http://{g.host}:{g.port}/v1 · {auth}")
    tools = tool_settings(cfg, workspace, ())
    table.add_row("Exec sandbox", sandbox_status(tools) if cfg.tools.exec.enabled else "exec tool disabled")
    table.add_row("Exec network", network_status(tools))
    table.add_row("Restrict to workspace", "yes" if cfg.tools.restrict_to_workspace else "[yellow]no[/]")
    enabled = [name for name, c in cfg.channels.items() if c.enabled]
    table.add_row("Channels", ", ".join(["api (gateway)", *enabled]))
    if cfg.channels.telegram.enabled:
        table.add_row("Telegram", _telegram_line(cfg.channels.telegram.bot_token()))
    table.add_row("Heartbeat", f"every {cfg.heartbeat.interval:g}s" if cfg.heartbeat.enabled else "off")
    table.add_row("MCP servers", _mcp_line(cfg))
    table.add_row("Bus", _bus_line(cfg))
    from mofaclaw.backends import describe_store

    table.add_row("Sessions", describe_store(cfg.session, paths.mofaclaw_home()))
    console().print(table)


def _bus_line(cfg: Config) -> str:
    """The bus backend; for Redis, the replicas alive now (or why it cannot be reached), never a password."""
    import asyncio

    from rich.markup import escape

    from mofaclaw.backends import make_bus
    from mofaclaw.errors import MofaclawError

    if cfg.bus.backend == "memory":
        return "memory (one process)"

    async def ask() -> str:
        bus = make_bus(cfg.bus)
        try:  # no connect(): that would count this command among the replicas
            status = await bus.status()
        finally:
            await bus.close()
        replicas = ", ".join(status.replicas) or "none running"
        return f"{status.backend} · {status.where} · replicas: {replicas}"

    try:
        return escape(asyncio.run(ask()))
    except MofaclawError as exc:
        return f"[red]{escape(str(exc))}[/]"


def _mcp_line(cfg: Config) -> str:
    """Each configured server by name, how it is reached and when it starts; never its arguments, URL
    path or query, environment or headers, where tokens live. Connecting is `mofaclaw mcp list`'s job."""
    from urllib.parse import urlsplit

    from rich.markup import escape

    servers = cfg.mcp.servers
    if not servers:
        return escape("none (add [mcp.servers.NAME] to the config)")
    described = []
    for name, server in sorted(servers.items()):
        if server.url:
            where = urlsplit(server.url)
            reach = f"{where.scheme}://{where.hostname}{f':{where.port}' if where.port else ''}"
        else:
            reach = Path(server.command.split()[0]).name if server.command.strip() else "stdio"
        described.append(f"{name} ({reach}, {server.startup if server.enabled else 'disabled'})")
    return escape(", ".join(described)) + " · tools and state: mofaclaw mcp list"


def _telegram_line(token: str) -> str:
    """What the running gateway last recorded (bot name, polling or not), never the token."""
    from mofaclaw.channels.state import telegram_state_dir
    from mofaclaw.channels.telegram_state import TelegramState, describe
    from mofaclaw.config.paths import mofaclaw_home

    if not token:
        return "[red]no token[/] (set channels.telegram.token or TELEGRAM_BOT_TOKEN)"
    from rich.markup import escape

    return escape(describe(TelegramState(telegram_state_dir(mofaclaw_home())).read_status()))


def register(app: typer.Typer) -> None:
    app.command(short_help="Show config, paths, model, providers, gateway and channels.")(status)
