"""ProviderSettings: one provider's plain settings, handed down from the config so providers never import it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Plain settings for one provider, handed down from the config so providers never import it."""

    name: str
    kind: str = "openai"
    api_key: str | None = None
    api_base: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    max_retries: int = 3
    key_env: str | None = None  # the variable to name when the key is missing
    needs_key: bool = True
    model_path: str | None = None
    tool_capable: bool = False
    context_size: int = 4096
    threads: int = 0
