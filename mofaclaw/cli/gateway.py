"""`mofaclaw gateway`: the agent, its channels, its services and the OpenAI-compatible API in one process."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from mofaclaw.cli.common import ConfigOption, VerboseOption, fail, load, setup_logging

log = logging.getLogger("mofaclaw.gateway")


def gateway(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", help="Port to listen on (default 18790).")] = None,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the agent with its channels, services and the OpenAI-compatible API on /v1."""
    overrides: dict = {"gateway": {}}
    if host is not None:
        overrides["gateway"]["host"] = host
    if port is not None:
        overrides["gateway"]["port"] = port
    cfg, path = load(config, overrides)
    setup_logging(verbose)

    from mofaclaw.backends import make_bus
    from mofaclaw.config import paths
    from mofaclaw.config.loader import exposed_config_warning
    from mofaclaw.errors import BackendUnavailable, ConfigError, MofaclawError
    from mofaclaw.gateway.server import check_exposure
    from mofaclaw.runtime import build_runtime, gateway_settings, serve_gateway

    settings = gateway_settings(cfg)
    try:
        check_exposure(settings)
        # The gateway is the one that joins a cluster ([bus] backend = "redis"); `agent` and `cron run` stay local.
        runtime = build_runtime(cfg, home=paths.mofaclaw_home(), bus=make_bus(cfg.bus))
        runtime.add_chat_channels()  # [channels.*]: Telegram, ...
    except MofaclawError as exc:
        fail(str(exc), code=2)
    for warning in runtime.warnings:
        log.warning("%s", warning)
    if exposed := exposed_config_warning(path):  # a config file other users can read
        log.warning("%s", exposed)
    log.info("starting mofaclaw gateway (model %s, config %s)", runtime.model or "none", path)
    try:
        _run(serve_gateway(runtime, settings))
    except MofaclawError as exc:
        # A backend unreachable at start (Redis, PostgreSQL) is a setup problem, like a bad config.
        fail(str(exc), code=2 if isinstance(exc, ConfigError | BackendUnavailable) else 1)
    log.info("gateway stopped")


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (it comes with uvicorn[standard]): the whole gateway, agent loop included,
    runs on one event loop, and uvloop's costs less per request than asyncio's default one."""
    import asyncio  # here, not at the top: `mofaclaw --help` never needs it

    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def register(app: typer.Typer) -> None:
    app.command(short_help="Run the agent with its channels, services and the API on /v1.")(gateway)
