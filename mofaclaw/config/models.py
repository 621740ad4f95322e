"""The configuration schema: every key, its type and its default. config.example.toml mirrors it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


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


class GatewayConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(18790, ge=0, le=65535)
    api_keys: list[SecretStr] = []
    allow_unauthenticated: bool = False
    cors_origins: list[str] = []
    request_timeout: float = Field(300.0, gt=0)
    max_body_bytes: int = Field(20 * 1024 * 1024, gt=0)
    keepalive_interval: float = Field(15.0, gt=0)
    models: list[str] = []  # extra model ids listed by /v1/models besides "mofaclaw"
    client_tool_timeout: float = Field(600.0, gt=0)  # seconds a turn paused on a client's tools waits


class ExecConfig(Section):
    enabled: bool = True
    timeout: float = Field(60.0, gt=0)
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
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


class HeartbeatConfig(Section):
    enabled: bool = True
    interval: float = Field(1800.0, gt=0)
    channel: str = ""
    to: str = ""


class CronConfig(Section):
    enabled: bool = True
    grace_seconds: float = Field(300.0, ge=0)


class Config(Section):
    agents: AgentsConfig = AgentsConfig()
    providers: dict[str, ProviderConfig] = {}
    gateway: GatewayConfig = GatewayConfig()
    tools: ToolsConfig = ToolsConfig()
    channels: dict[str, ChannelConfig] = {}
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    cron: CronConfig = CronConfig()
