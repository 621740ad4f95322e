"""`mofaclaw gateway`: the agent, its channels, its services and the OpenAI-compatible API in one process."""

from __future__ import annotations

import asyncio
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

    from mofaclaw.errors import MofaclawError
    from mofaclaw.gateway.server import is_loopback
    from mofaclaw.runtime import build_runtime, gateway_settings, serve_gateway

    settings = gateway_settings(cfg)
    if not is_loopback(settings.host) and not settings.api_keys and not cfg.gateway.allow_unauthenticated:
        fail(f"refusing to listen on {settings.host} without gateway.api_keys: anyone on the network could "
             "use your agent. Set gateway.api_keys, or gateway.allow_unauthenticated = true to accept the risk.",
             code=2)
    try:
        runtime = build_runtime(cfg)
    except MofaclawError as exc:
        fail(str(exc), code=2)
    for warning in runtime.warnings:
        log.warning("%s", warning)
    from mofaclaw.config.loader import exposed_config_warning  # files: a config others can read
    if exposed := exposed_config_warning(path):
        log.warning("%s", exposed)
    log.info("starting mofaclaw gateway (model %s, config %s)", runtime.model or "none", path)
    try:
        _run(serve_gateway(runtime, settings))
    except MofaclawError as exc:
        fail(str(exc))
    log.info("gateway stopped")


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (it comes with uvicorn[standard]): the whole gateway, agent loop included,
    runs on one event loop, and uvloop's costs less per request than asyncio's default one."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def register(app: typer.Typer) -> None:
    app.command()(gateway)
