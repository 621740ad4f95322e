"""Shared fixtures: a private MOFACLAW_HOME for every test, and the scripted OpenAI-compatible upstream."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from upstream import ScriptedUpstream


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
