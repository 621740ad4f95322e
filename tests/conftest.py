"""Shared fixtures: a private MOFACLAW_HOME for every test, and the scripted OpenAI-compatible upstream."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gateway_harness import GatewayProcess
from upstream import ScriptedUpstream

# Real redis-server and PostgreSQL for the cluster's tests (each starts once per run, when first asked for).
pytest_plugins = ("redis_server", "postgres_server")


@pytest.fixture(autouse=True)
def mofaclaw_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MOFACLAW_HOME is a fresh (not yet created) tmp_path / "home"; no MOFACLAW_*, OPENAI_* or
    *_API_KEY variable of the outer environment leaks in, so no test touches ~/.mofaclaw."""
    for name in list(os.environ):
        if name.startswith(("MOFACLAW_", "OPENAI_")) or name.endswith("_API_KEY"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("MOFACLAW_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[ScriptedUpstream]:
    """One upstream server for the whole run; tests use `upstream`, which resets it."""
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
def upstream(upstream_server: ScriptedUpstream) -> Iterator[ScriptedUpstream]:
    """The scripted upstream with an empty script, no records and no token delay."""
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()  # let requests the test left hanging finish


@pytest.fixture
def start_gateway(mofaclaw_home: Path, upstream: ScriptedUpstream) -> Iterator[Callable[..., GatewayProcess]]:
    """Start the real `mofaclaw gateway` against the scripted upstream; stopped (SIGINT) after the test."""
    started: list[GatewayProcess] = []

    def start(config: str = "", env: dict[str, str] | None = None, args: tuple[str, ...] = (),
              upstream_url: str | None = upstream.base_url) -> GatewayProcess:
        gateway = GatewayProcess(mofaclaw_home, upstream_url, config, env, args).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
