"""The real `mofaclaw` command: version, help, config location, precedence and every bad-config case."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mofaclaw.config.loader import load_config
from mofaclaw.config.models import ProviderConfig

ROOT = Path(__file__).resolve().parents[1]


def mofaclaw(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mofaclaw", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, input=stdin, timeout=timeout)


def test_version_and_help() -> None:
    from mofaclaw import __version__

    assert mofaclaw("--version").stdout.strip() == f"mofaclaw {__version__}"
    help_text = mofaclaw("--help").stdout
    for command in ("gateway", "agent", "onboard", "status", "sessions", "cron"):
        assert command in help_text
    for command in ("gateway", "agent", "onboard", "status", "sessions", "cron"):
        assert "--config" in mofaclaw(command, "--help").stdout or command in ("sessions", "cron")


def test_example_config_documents_every_key_with_its_default() -> None:
    config, _ = load_config(ROOT / "config.example.toml")
    assert config.gateway.host == "127.0.0.1" and config.gateway.port == 18790
    text = (ROOT / "config.example.toml").read_text()
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and (" = " in line or line[2:].startswith("[")) else line
        for line in text.splitlines())
    documented = tomllib.loads(uncommented.replace("sk-...", "x").replace("[channels.NAME]", "[channels.name]"))
    # every key of every fixed section appears in the example
    defaults = config.model_dump()
    for section in ("gateway", "heartbeat", "cron"):
        assert set(documented[section]) == set(defaults[section]), section
    assert set(documented["agents"]["defaults"]) == set(defaults["agents"]["defaults"])
    assert set(documented["tools"]) - {"exec", "web"} == set(defaults["tools"]) - {"exec", "web"}
    assert set(documented["tools"]["exec"]) == set(defaults["tools"]["exec"])
    assert set(documented["tools"]["web"]) == set(defaults["tools"]["web"])
    provider_keys = set(documented["providers"]["openai"]) | set(documented["providers"]["local"])
    assert provider_keys == set(ProviderConfig.model_fields)
    assert set(documented["channels"]["name"]) == {"enabled", "allow_from"}
    assert set(documented["channels"]["telegram"]) == set(defaults["channels"]["telegram"])


def _status(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return mofaclaw("status", *args, env={"MOFACLAW_HOME": str(home), **(env or {})})


def test_precedence_file_env_flag(mofaclaw_home: Path, tmp_path: Path) -> None:
    mofaclaw_home.mkdir()
    (mofaclaw_home / "config.toml").write_text("[gateway]\nport = 1111\n")
    assert "127.0.0.1:1111" in _status(mofaclaw_home).stdout
    assert "127.0.0.1:2222" in _status(mofaclaw_home, env={"MOFACLAW_GATEWAY__PORT": "2222"}).stdout
    other = tmp_path / "other.toml"
    other.write_text("[gateway]\nport = 3333\n")
    assert "127.0.0.1:3333" in _status(mofaclaw_home, "--config", str(other)).stdout
    assert "127.0.0.1:3333" in _status(mofaclaw_home, env={"MOFACLAW_CONFIG": str(other)}).stdout
    # a command-line flag beats the environment: the gateway listens where --port says
    from gateway_harness import GatewayProcess

    gw = GatewayProcess(mofaclaw_home, None, "[gateway]\nport = 1111\n",
                        env={"MOFACLAW_GATEWAY__PORT": "1"}).start()
    try:
        assert not gw.base.endswith(":1") and not gw.base.endswith(":1111")
    finally:
        assert gw.stop() == 0


def test_missing_config_file_means_defaults(mofaclaw_home: Path) -> None:
    result = _status(mofaclaw_home)
    assert result.returncode == 0
    assert "not found: defaults in use" in result.stdout and "127.0.0.1:18790" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[gateway]\nport = "abc"\n', "invalid value 'abc' for 'gateway.port'"),
        ("[gateway]\nprot = 1\n", "unknown key 'gateway.prot' (did you mean 'gateway.port'?)"),
        ("[gateway\nport = 1\n", "invalid TOML"),
        ("[agents.defaults]\ntemprature = 0.3\n", "did you mean 'agents.defaults.temperature'?"),
        ("[providers.openai]\napi_kee = 'x'\n", "did you mean 'providers.openai.api_key'?"),
        ('[tools.exec]\nsandbox = "docker"\n', "invalid value 'docker' for 'tools.exec.sandbox'"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(mofaclaw_home: Path, text: str, expected: str) -> None:
    mofaclaw_home.mkdir()
    config = mofaclaw_home / "config.toml"
    config.write_text(text)
    result = _status(mofaclaw_home)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and str(config) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_environment_value_names_the_variable(mofaclaw_home: Path) -> None:
    result = _status(mofaclaw_home, env={"MOFACLAW_GATEWAY__PORT": "eighty"})
    assert result.returncode == 2
    assert "environment variable MOFACLAW_GATEWAY__PORT: invalid value 'eighty' for 'gateway.port'" in result.stderr


def test_unknown_model_provider_is_a_config_error(mofaclaw_home: Path) -> None:
    mofaclaw_home.mkdir()
    (mofaclaw_home / "config.toml").write_text('[agents.defaults]\nmodel = "nowhere/some-model"\n')
    result = mofaclaw("agent", "-m", "hi", env={"MOFACLAW_HOME": str(mofaclaw_home)})
    assert result.returncode == 2
    assert "model provider 'nowhere' is neither configured nor known" in result.stderr


def test_onboard_creates_home_config_and_workspace(mofaclaw_home: Path) -> None:
    env = {"MOFACLAW_HOME": str(mofaclaw_home)}
    first = mofaclaw("onboard", env=env)
    assert first.returncode == 0, first.stderr
    config = mofaclaw_home / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert config.read_text() == (ROOT / "config.example.toml").read_text()
    workspace = mofaclaw_home / "workspace"
    for name in ("AGENTS.md", "SOUL.md", "USER.md", "TOOLS.md", "HEARTBEAT.md", "memory/MEMORY.md"):
        assert (workspace / name).is_file(), name
    assert (workspace / "skills").is_dir()
    (workspace / "USER.md").write_text("I am Ada.")
    second = mofaclaw("onboard", env=env)
    assert second.returncode == 0 and "Nothing to do" in second.stdout
    assert (workspace / "USER.md").read_text() == "I am Ada."
    mofaclaw("onboard", "--force", env=env)
    assert (workspace / "USER.md").read_text() != "I am Ada."
    # the gateway starts on what onboard wrote, even with no provider key yet
    status = _status(mofaclaw_home)
    assert status.returncode == 0 and "exists" in status.stdout


def test_status_never_shows_a_key(mofaclaw_home: Path) -> None:
    mofaclaw_home.mkdir()
    (mofaclaw_home / "config.toml").write_text(
        '[agents.defaults]\nmodel = "openrouter/some/model"\n[providers.openrouter]\napi_key = "sk-or-very-secret"\n'
        '[providers.mine]\napi_base = "http://127.0.0.1:9/v1"\n')
    result = _status(mofaclaw_home, env={"GROQ_API_KEY": "gsk-secret"})
    assert result.returncode == 0
    assert "sk-or-very-secret" not in result.stdout and "gsk-secret" not in result.stdout
    assert "openrouter" in result.stdout and "key set" in result.stdout
    assert "mine (custom)" in result.stdout
    assert "Exec sandbox" in result.stdout
