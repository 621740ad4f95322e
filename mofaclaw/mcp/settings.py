"""What the MCP client needs to know about one server: plain values, handed down from the config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal
from urllib.parse import urlsplit

Transport = Literal["stdio", "streamable-http", "sse"]


@dataclass(frozen=True, slots=True)
class McpServerSettings:
    name: str
    transport: Transport
    command: str = ""
    args: tuple[str, ...] = ()
    # Secrets live here (tokens in env and headers): kept out of repr, so out of every log line.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str = ""
    url: str = field(default="", repr=False)  # a URL may carry a key in its query
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    enabled: bool = True
    timeout: float = 60.0
    tools: tuple[str, ...] = ("*",)
    startup: Literal["eager", "lazy"] = "eager"

    def allows(self, tool: str) -> bool:
        return any(fnmatchcase(tool, pattern) for pattern in self.tools)

    @property
    def target(self) -> str:
        """Where the server is, safe to show: the command's name, or the URL without credentials or query."""
        if self.transport == "stdio":
            return self.command
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
