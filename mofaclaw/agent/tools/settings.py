"""The plain values the built-in tools need, so they never import the config model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# "required" refuses to run commands without the sandbox; "bwrap" is its older name.
SandboxMode = Literal["auto", "required", "bwrap", "none"]
NetworkMode = Literal["host", "none"]
SearchProviderName = Literal["duckduckgo", "brave"]


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """Filled by the runtime from `[tools]`; defaults match mofaclaw.config.models."""

    workspace: Path
    restrict_to_workspace: bool = True
    read_max_chars: int = 100_000

    exec_enabled: bool = True
    exec_timeout: float = 60.0
    exec_sandbox: SandboxMode = "auto"
    exec_network: NetworkMode = "host"
    exec_max_output_chars: int = 10_000

    web_search_provider: SearchProviderName = "duckduckgo"
    web_brave_api_key: str | None = None
    web_fetch_timeout: float = 20.0
    web_fetch_max_bytes: int = 5 * 1024 * 1024
    web_fetch_max_chars: int = 50_000
    web_max_redirects: int = 5
    web_allow_private_addresses: bool = False
    # CIDR networks web_fetch may reach even though they are not public (e.g. "192.168.1.0/24" for a
    # home server); narrower than allow_private_addresses, which opens every private range.
    web_allowed_networks: tuple[str, ...] = ()

    # API keys and tokens the runtime knows (provider keys, gateway keys, channel tokens): any
    # environment variable holding one of them is removed before a command runs.
    secret_values: tuple[str, ...] = ()
