"""Other local users read nothing of mofaclaw's: data dir, workspace, sessions and cron files are the owner's only."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gateway_harness import GatewayProcess
from test_cli_config import mofaclaw
from upstream import ScriptedUpstream


@pytest.fixture(autouse=True)
def common_umask() -> Iterator[None]:
    """The usual umask, which leaves new files readable by everyone: mofaclaw must not rely on it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_agent_creates_a_private_data_dir_workspace_and_database(
        mofaclaw_home: Path, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"  # outside the home, so the home is created by mofaclaw
    config.write_text(f'[agents.defaults]\nmodel = "scripted/m"\n\n[providers.scripted]\n'
                      f'api_base = "{upstream.base_url}"\napi_key = "x"\nmax_retries = 0\n')
    env = {"MOFACLAW_HOME": str(mofaclaw_home), "MOFACLAW_CONFIG": str(config)}
    result = mofaclaw("agent", "-m", "Hello", env=env)
    assert result.returncode == 0, result.stderr
    assert mode(mofaclaw_home) == 0o700
    assert mode(mofaclaw_home / "workspace") == 0o700
    database = mofaclaw_home / "sessions.db"
    assert mode(database) == 0o600
    for extra in (database.with_name("sessions.db-wal"), database.with_name("sessions.db-shm")):
        assert not extra.exists() or mode(extra) == 0o600
    added = mofaclaw("cron", "add", "--name", "n", "--message", "m", "--every", "1h", env=env)
    assert added.returncode == 0, added.stderr
    assert mode(mofaclaw_home / "cron") == 0o700
    assert {p.name: mode(p) for p in (mofaclaw_home / "cron").iterdir()} == {"jobs.json": 0o600,
                                                                           "jobs.json.lock": 0o600}


def test_gateway_narrows_an_open_data_dir_and_keeps_its_database_private(
        start_gateway: Callable[..., GatewayProcess], mofaclaw_home: Path) -> None:
    mofaclaw_home.mkdir()
    os.chmod(mofaclaw_home, 0o755)
    old_db = sqlite3.connect(mofaclaw_home / "sessions.db")  # as an older version left it: 0644
    old_db.close()
    assert mode(mofaclaw_home / "sessions.db") == 0o644
    gw = start_gateway()  # the harness writes config.toml with the umask's 0644
    client = gw.client(api_key="unused", max_retries=0)
    client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "hi"}],
                                   extra_body={"conversation_id": "modes"})
    assert mode(mofaclaw_home) == 0o700 and mode(mofaclaw_home / "workspace") == 0o700
    database = mofaclaw_home / "sessions.db"
    for path in (database, database.with_name("sessions.db-wal"), database.with_name("sessions.db-shm")):
        assert mode(path) == 0o600, path  # the WAL files exist while the gateway runs
    config = mofaclaw_home / "config.toml"
    assert f"{mofaclaw_home} was open to other users (mode 755); narrowed to 700" in gw.output
    assert f"{config} is readable by other users (mode 644)" in gw.output and f"chmod 600 {config}" in gw.output
    assert "sk-upstream-secret" not in gw.output


def test_a_private_config_gets_no_warning_and_your_own_workspace_keeps_its_mode(
        mofaclaw_home: Path, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    mofaclaw_home.mkdir(mode=0o700)
    workspace = tmp_path / "my-workspace"
    workspace.mkdir()
    os.chmod(workspace, 0o750)  # made by the user, shared with a group on purpose
    gw = GatewayProcess(mofaclaw_home, upstream.base_url, env={"MOFACLAW_AGENTS__DEFAULTS__WORKSPACE": str(workspace)})
    os.chmod(mofaclaw_home / "config.toml", 0o600)
    with gw:
        assert mode(mofaclaw_home) == 0o700
    assert mode(workspace) == 0o750
    assert "readable by other users" not in gw.output and "narrowed" not in gw.output


def test_onboard_makes_everything_private(mofaclaw_home: Path) -> None:
    result = mofaclaw("onboard", env={"MOFACLAW_HOME": str(mofaclaw_home)})
    assert result.returncode == 0, result.stderr
    assert mode(mofaclaw_home) == 0o700 and mode(mofaclaw_home / "workspace") == 0o700
    assert mode(mofaclaw_home / "config.toml") == 0o600
