"""The web_search tool and its providers: keyless DuckDuckGo (via ddgs) by default, Brave with a key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mofaclaw.agent.tools.base import ToolContext
from mofaclaw.agent.tools.settings import ToolSettings
from mofaclaw.errors import ToolError

BRAVE_ENDPOINT = "https://api.search.brave.com/res/v1/web/search"
MAX_RESULTS = 10


@dataclass(frozen=True, slots=True)
class SearchResult:
    title: str
    url: str
    snippet: str


class SearchProvider(Protocol):
    name: str

    async def search(self, query: str, count: int) -> list[SearchResult]:
        """Raise ToolError when the search cannot be made."""
        ...


class DuckDuckGoSearch:
    name = "DuckDuckGo"

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def search(self, query: str, count: int) -> list[SearchResult]:
        # ddgs is synchronous and talks to the network: it runs in a thread.
        return await asyncio.to_thread(self._search, query, count)

    def _search(self, query: str, count: int) -> list[SearchResult]:
        from ddgs import DDGS  # imported on first use: it pulls in a large HTTP stack
        from ddgs.exceptions import DDGSException

        try:
            rows = DDGS(timeout=int(self.timeout)).text(query, max_results=count)
        except DDGSException as exc:
            raise ToolError(f"web search failed (DuckDuckGo): {exc}") from None
        return [SearchResult(r.get("title", ""), r.get("href", ""), r.get("body", "")) for r in rows[:count]]


class BraveSearch:
    name = "Brave"

    def __init__(self, api_key: str, timeout: float, endpoint: str = BRAVE_ENDPOINT) -> None:
        self.api_key = api_key
        self.timeout = timeout
        self.endpoint = endpoint

    async def search(self, query: str, count: int) -> list[SearchResult]:
        import httpx  # here: most gateways never search, and httpx is ~5 MB at start-up (see web.py)

        headers = {"X-Subscription-Token": self.api_key, "Accept": "application/json"}
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.endpoint, params={"q": query, "count": count}, headers=headers)
        except httpx.HTTPError as exc:
            raise ToolError(f"web search failed (Brave): {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise ToolError(f"web search failed (Brave answered HTTP {response.status_code}): {response.text[:300]}")
        try:
            rows = response.json().get("web", {}).get("results", [])
        except ValueError:
            raise ToolError("web search failed (Brave sent a response that is not JSON)") from None
        return [SearchResult(r.get("title", ""), r.get("url", ""), r.get("description", "")) for r in rows[:count]]


def _duckduckgo(settings: ToolSettings) -> SearchProvider:
    return DuckDuckGoSearch(settings.web_fetch_timeout)


def _brave(settings: ToolSettings) -> SearchProvider:
    if not settings.web_brave_api_key:
        raise ToolError("tools.web.search_provider is 'brave' but tools.web.brave_api_key is not set")
    return BraveSearch(settings.web_brave_api_key, settings.web_fetch_timeout)


PROVIDERS: Mapping[str, Callable[[ToolSettings], SearchProvider]] = {"duckduckgo": _duckduckgo, "brave": _brave}


def search_provider(settings: ToolSettings) -> SearchProvider:
    """Brave when chosen or when a Brave key is configured (a key says what the user wants), else DuckDuckGo."""
    name = "brave" if settings.web_brave_api_key else settings.web_search_provider
    return PROVIDERS[name](settings)


class WebSearchTool:
    name = "web_search"
    description = (
        "Search the web. Returns a numbered list of results (title, URL, snippet); use web_fetch to read a result."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "What to search for"},
            "count": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "description": "Results (default 5)"},
        },
        "required": ["query"],
        "additionalProperties": False,
    }

    def __init__(self, provider: Callable[[], SearchProvider]) -> None:
        # A factory, not a provider: a misconfigured provider is reported when the model searches,
        # as a tool error, instead of stopping the whole agent from starting.
        self._provider = provider

    @classmethod
    def from_settings(cls, settings: ToolSettings) -> WebSearchTool:
        return cls(lambda: search_provider(settings))

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        provider = self._provider()
        query = args["query"]
        results = await provider.search(query, args.get("count", 5))
        if not results:
            return f"No results for {query!r} ({provider.name})."
        lines = [f"[Search results for {query!r} from {provider.name} — external content, untrusted]"]
        for number, result in enumerate(results, start=1):
            lines += [f"{number}. {result.title}", f"   {result.url}"]
            if result.snippet:
                lines.append(f"   {result.snippet}")
        return "\n".join(lines)
