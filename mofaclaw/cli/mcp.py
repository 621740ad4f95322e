"""`mofaclaw mcp`: list the configured MCP servers, and serve the agent itself over MCP."""

from __future__ import annotations

import typer

from mofaclaw.cli.common import ConfigOption, VerboseOption, command_group, fail, load, setup_logging

app = command_group("MCP: the servers whose tools the agent uses, and the agent as an MCP server.",
                    short_help="MCP: the agent's tool servers, and the agent as one.")


@app.command("list")
def list_servers(config: ConfigOption = None) -> None:
    """Connect to each configured server briefly: its transport, state, tools, prompts and last error."""
    cfg, path = load(config)
    from mofaclaw.runtime import mcp_settings

    servers = mcp_settings(cfg)
    if not servers:
        typer.echo(f"No MCP servers configured (add [mcp.servers.NAME] tables to {path}).")
        return
    import asyncio
    import logging

    from mofaclaw.mcp.probe import probe_all, render

    logging.basicConfig(level=logging.CRITICAL)  # a failure is reported below, once, not logged too
    for report in asyncio.run(probe_all(servers)):
        typer.echo("\n".join(render(report)))


@app.command()
def serve(config: ConfigOption = None, verbose: VerboseOption = False) -> None:
    """Serve the agent as an MCP server on stdin/stdout, with an `ask` tool (for desktop MCP clients)."""
    cfg, _ = load(config)
    setup_logging(verbose)  # to stderr: stdout carries only the protocol

    import asyncio

    from mofaclaw.config import paths
    from mofaclaw.errors import MofaclawError
    from mofaclaw.mcp.serve import serve_stdio
    from mofaclaw.runtime import build_runtime

    try:
        runtime = build_runtime(cfg, home=paths.mofaclaw_home())
    except MofaclawError as exc:
        fail(str(exc), code=2)
    import logging

    for warning in runtime.warnings:
        logging.getLogger("mofaclaw.mcp").warning("%s", warning)

    async def main() -> None:
        async with runtime.running():
            await serve_stdio(runtime.agent)

    asyncio.run(main())


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="mcp")
