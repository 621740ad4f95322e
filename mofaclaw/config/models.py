"""The configuration schema: every key, its type and its default. config.example.toml mirrors it."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import NoDecode


class Section(BaseModel):
    # A typo in a key must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class AgentDefaults(Section):
    model: str = ""  # "provider/model-id"; empty: local/smollm2 when installed
    workspace: str = ""  # empty: $MOFACLAW_HOME/workspace
    max_tokens: int = Field(4096, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)  # None: the provider's default
    max_tool_iterations: int = Field(20, gt=0)
    history_window: int = Field(50, gt=0)
    max_concurrent_turns: int = Field(256, gt=0)
    subagent_max_iterations: int = Field(15, gt=0)
    timezone: str = ""  # IANA name for the system prompt; empty: the machine's


class AgentsConfig(Section):
    defaults: AgentDefaults = AgentDefaults()


class ProviderConfig(Section):
    kind: Literal["openai", "local"] = "openai"
    api_key: SecretStr | None = None
    api_base: str | None = None
    extra_headers: dict[str, str] = {}
    timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0)
    # local kind only
    model_path: str | None = None
    tool_capable: bool = False
    context_size: int = Field(4096, gt=0)
    threads: int = Field(0, ge=0)  # 0: all cores


def _json_list(value: Any) -> Any:
    # From the environment a list arrives as text; anything but a JSON list is a one-line config error
    # (pydantic-settings' own decoding would raise a traceback instead).
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError('expected a JSON list, e.g. ["a", "b"]') from None
        if not isinstance(value, list):
            raise ValueError('expected a JSON list, e.g. ["a", "b"]')
    return value


def _secret_enough(key: SecretStr) -> SecretStr:
    value = key.get_secret_value()
    if len(value) < MIN_API_KEY_CHARS:
        raise ValueError(f"an API key needs at least {MIN_API_KEY_CHARS} characters to be secret "
                         "(e.g. the output of `openssl rand -hex 32`)")
    if not all("!" <= c <= "~" for c in value):
        raise ValueError("an API key may only hold printable ASCII without spaces (it travels in a header)")
    return key


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("expected an IP address or a CIDR network, e.g. 10.0.0.1 or 10.0.0.0/8") from None
    return value


def _host_name(value: str) -> str:
    if not re.fullmatch(r"\*|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+", value):
        raise ValueError('expected a host name without port, e.g. "agent.example.com", "[::1]" or "*"')
    return value.lower()


MIN_API_KEY_CHARS = 16
EnvList = Annotated[list[str], NoDecode, BeforeValidator(_json_list)]


class GatewayConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(18790, ge=0, le=65535)
    api_keys: Annotated[list[Annotated[SecretStr, AfterValidator(_secret_enough)]], NoDecode,
                        BeforeValidator(_json_list)] = []
    allow_unauthenticated: bool = False
    cors_origins: EnvList = []
    allowed_hosts: Annotated[list[Annotated[str, AfterValidator(_host_name)]], NoDecode,
                             BeforeValidator(_json_list)] = []
    trusted_proxies: Annotated[list[Annotated[str, AfterValidator(_network)]], NoDecode,
                               BeforeValidator(_json_list)] = []
    request_timeout: float = Field(300.0, gt=0)
    max_body_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_header_bytes: int = Field(32 * 1024, ge=4096)
    max_headers: int = Field(100, ge=16)
    header_timeout: float = Field(10.0, gt=0)
    body_timeout: float = Field(60.0, gt=0)
    keepalive_interval: float = Field(15.0, gt=0)
    models: EnvList = []  # extra model ids listed by /v1/models besides "mofaclaw"
    client_tool_timeout: float = Field(600.0, gt=0)  # seconds a turn paused on a client's tools waits


class ExecConfig(Section):
    enabled: bool = True
    timeout: float = Field(60.0, gt=0)
    sandbox: Literal["auto", "required", "bwrap", "none"] = "auto"  # "bwrap": the older name of "required"
    network: Literal["host", "none"] = "host"
    max_output_chars: int = Field(10_000, gt=0)


class WebConfig(Section):
    search_provider: Literal["duckduckgo", "brave"] = "duckduckgo"
    brave_api_key: SecretStr | None = None
    fetch_timeout: float = Field(20.0, gt=0)
    fetch_max_bytes: int = Field(5 * 1024 * 1024, gt=0)
    fetch_max_chars: int = Field(50_000, gt=0)
    max_redirects: int = Field(5, ge=0)
    allow_private_addresses: bool = False
    allowed_networks: list[str] = []  # CIDRs web_fetch may reach although private, e.g. a home server


class ToolsConfig(Section):
    restrict_to_workspace: bool = True
    read_max_chars: int = Field(100_000, gt=0)
    exec: ExecConfig = ExecConfig()
    web: WebConfig = WebConfig()


class ChannelConfig(BaseModel):
    # Channels carry their own settings (tokens, ...) beside these two.
    model_config = ConfigDict(extra="allow")

    enabled: bool = False
    allow_from: list[str] = []  # empty: nobody; ["*"]: everybody

    def secrets(self) -> list[str]:
        """Values to keep out of tool output and logs: any extra key that names a token or secret."""
        return [str(v) for k, v in (self.model_extra or {}).items() if "token" in k or "secret" in k]


class TelegramConfig(ChannelConfig):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None  # unset: $TELEGRAM_BOT_TOKEN
    api_base: str = "https://api.telegram.org"  # a self-hosted Bot API server's root URL works too
    proxy: str | None = None  # e.g. "socks5://127.0.0.1:1080" or "http://proxy:3128"
    poll_timeout: int = Field(30, ge=1, le=50)  # seconds one long poll (getUpdates) waits for news
    stall_timeout: float = Field(60.0, gt=0)  # a poll running longer than this is stalled and restarted
    stream_edit_interval: float = Field(1.0, gt=0)  # seconds between edits of a streamed answer
    max_download_bytes: int = Field(20 * 1024 * 1024, gt=0)  # photos, documents, voice notes

    @model_validator(mode="after")
    def _stall_after_poll(self) -> TelegramConfig:
        if self.stall_timeout <= self.poll_timeout:
            raise ValueError(f"stall_timeout ({self.stall_timeout:g}) must exceed poll_timeout ({self.poll_timeout})")
        return self

    def bot_token(self) -> str:
        """The configured token, else $TELEGRAM_BOT_TOKEN, else ""."""
        if self.token is not None:
            return self.token.get_secret_value()
        return os.environ.get("TELEGRAM_BOT_TOKEN", "")

    def secrets(self) -> list[str]:
        return [t for t in (self.bot_token(),) if t]


class ChannelsConfig(BaseModel):
    """The [channels] table: Telegram is typed; any other [channels.NAME] is a generic ChannelConfig."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, ChannelConfig] = Field(init=False)

    telegram: TelegramConfig = TelegramConfig()

    def items(self) -> list[tuple[str, ChannelConfig]]:
        return [("telegram", self.telegram), *(self.model_extra or {}).items()]

    def values(self) -> list[ChannelConfig]:
        return [config for _, config in self.items()]

    def get(self, name: str) -> ChannelConfig | None:
        return dict(self.items()).get(name)


class HeartbeatConfig(Section):
    enabled: bool = True
    interval: float = Field(1800.0, gt=0)
    channel: str = ""
    to: str = ""


class CronConfig(Section):
    enabled: bool = True
    grace_seconds: float = Field(300.0, ge=0)


class BusConfig(Section):
    # "redis": several gateway replicas share turns through Redis Streams (pip install 'mofaclaw[cluster]').
    backend: Literal["memory", "redis"] = "memory"
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")  # may hold a password: never logged
    lease: float = Field(15.0, gt=0)  # seconds after which a dead replica's claims and leases pass on
    prefix: str = Field("mofaclaw", pattern=r"^[A-Za-z0-9_.-]+$")  # key namespace, so clusters can share a Redis


class SessionConfig(Section):
    # "postgres": conversations, responses, paused turns and cron jobs in PostgreSQL, shared by replicas.
    backend: Literal["sqlite", "postgres"] = "sqlite"
    dsn: SecretStr = SecretStr("")  # postgresql://user:password@host:5432/db; never logged
    pool_size: int = Field(10, ge=1, le=1000)

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> SessionConfig:
        if self.backend == "postgres" and not self.dsn.get_secret_value():
            raise ValueError("backend 'postgres' needs a 'dsn' (postgresql://user:password@host/db)")
        return self


class McpServerConfig(Section):
    # stdio: a command to run; HTTP: a url (streamable HTTP unless transport = "sse"). Exactly one of the two.
    command: str = ""
    args: list[str] = []
    env: dict[str, SecretStr] = {}  # added to a minimal environment (PATH, HOME, ...); never logged
    cwd: str = ""
    url: str = ""
    headers: dict[str, SecretStr] = {}  # e.g. Authorization; never logged
    transport: Literal["", "stdio", "streamable-http", "sse"] = ""  # empty: from command/url
    enabled: bool = True
    timeout: float = Field(60.0, gt=0)  # seconds per call (and to connect)
    tools: list[str] = ["*"]  # allow-list of the server's tool names (glob patterns)
    startup: Literal["eager", "lazy"] = "eager"

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError("set exactly one of 'command' (a local stdio server) or 'url' (an HTTP server)")
        if self.command and self.transport not in ("", "stdio"):
            raise ValueError(f"transport '{self.transport}' needs a 'url', not a 'command'")
        if self.url and self.transport == "stdio":
            raise ValueError("transport 'stdio' needs a 'command', not a 'url'")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("'url' must start with http:// or https://")
        if self.command and self.headers:
            raise ValueError("'headers' only apply to an HTTP server ('url')")
        if self.url and (self.env or self.args or self.cwd):
            raise ValueError("'args', 'env' and 'cwd' only apply to a stdio server ('command')")
        return self


class McpConfig(Section):
    servers: dict[str, McpServerConfig] = {}

    @model_validator(mode="after")
    def _plain_names(self) -> McpConfig:
        # The name becomes part of tool names, which providers restrict to [a-zA-Z0-9_-].
        for name in self.servers:
            if not name or not all(c.isascii() and (c.isalnum() or c in "_-") for c in name):
                raise ValueError(f"server name '{name}' may only hold letters, digits, '_' and '-'")
        return self


class Config(Section):
    agents: AgentsConfig = AgentsConfig()
    providers: dict[str, ProviderConfig] = {}
    gateway: GatewayConfig = GatewayConfig()
    tools: ToolsConfig = ToolsConfig()
    channels: ChannelsConfig = ChannelsConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    bus: BusConfig = BusConfig()
    session: SessionConfig = SessionConfig()
    cron: CronConfig = CronConfig()
    mcp: McpConfig = McpConfig()
