"""The Telegram channel inside the real `mofaclaw gateway`: pairing, status, files, cron and heartbeat."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_telegram import FakeTelegram
from gateway_harness import GatewayProcess
from test_cli_config import mofaclaw
from upstream import ScriptedUpstream

StartGateway = Callable[..., GatewayProcess]
CHAT = 42


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def telegram_config(tg: FakeTelegram, allow_from: str = "") -> str:
    return (f'[channels.telegram]\nenabled = true\ntoken = "{tg.token}"\napi_base = "{tg.api_base}"\n'
            f"allow_from = [{allow_from}]\npoll_timeout = 1\nstall_timeout = 5\n\n")


def test_pairing_status_and_files_in_the_running_gateway(
        start_gateway: StartGateway, upstream: ScriptedUpstream, tg: FakeTelegram, mofaclaw_home: Path) -> None:
    env = {"MOFACLAW_HOME": str(mofaclaw_home)}
    gw = start_gateway(telegram_config(tg) + "[heartbeat]\nenabled = false\n", args=("--verbose",))
    tg.wait_until(lambda: len(tg.calls_of("getUpdates")) >= 1, what="the first poll")
    status = mofaclaw("status", env=env).stdout
    assert re.search(r"Telegram\s+│?\s*@claw_test_bot · (starting|polling)", status), status

    tg.user_message("hi")
    last = tg.user_message("hello?")
    tg.wait_until(lambda: any(int(c.params.get("offset") or 0) > last for c in tg.calls_of("getUpdates")),
                  what="both messages handled")
    [reply] = tg.texts_to(CHAT)
    code = re.search(r"pairing code is ([A-Z0-9]{8})", reply)
    assert code and upstream.request_count == 0, reply

    approved = mofaclaw("pairing", "approve", code.group(1), env=env)
    assert approved.returncode == 0, approved.stderr
    (mofaclaw_home / "workspace" / "chart.png").write_bytes(b"\x89PNG fake chart")
    (mofaclaw_home / "workspace" / "notes.txt").write_text("the notes")
    upstream.tool_calls([("message", {"content": "Here you go", "media": ["chart.png", "notes.txt"]})])
    upstream.reply("Sent you the files.")
    tg.user_message("send me the chart")
    tg.wait_until(lambda: tg.texts_to(CHAT)[-1:] == ["Sent you the files."], what="the answer")
    kinds = [(s.kind, s.filename, s.data) for s in tg.sent_to(CHAT) if s.kind != "text"]
    assert kinds == [("photo", "chart.png", b"\x89PNG fake chart"), ("document", "notes.txt", b"the notes")]
    assert "Here you go" in tg.texts_to(CHAT)

    assert gw.stop() == 0
    assert tg.token not in gw.output and "Traceback" not in gw.output
    status = mofaclaw("status", env=env).stdout
    assert "@claw_test_bot · stopped" in status and tg.token not in status


def test_cron_and_heartbeat_deliver_to_a_telegram_chat(
        start_gateway: StartGateway, upstream: ScriptedUpstream, tg: FakeTelegram, mofaclaw_home: Path) -> None:
    workspace = mofaclaw_home / "workspace"
    workspace.mkdir(parents=True)
    (workspace / "HEARTBEAT.md").write_text("- [ ] water the plants\n")
    start_gateway(telegram_config(tg) + f'[heartbeat]\ninterval = 1\nchannel = "telegram"\nto = "{CHAT}"\n')
    added = mofaclaw("cron", "add", "--name", "tea", "--message", "Remind me to drink tea", "--every", "2",
                     "--channel", "telegram", "--to", str(CHAT), env={"MOFACLAW_HOME": str(mofaclaw_home)})
    assert added.returncode == 0, added.stderr
    tg.wait_until(lambda: {"echo: - [ ] water the plants", "echo: Remind me to drink tea"} <= set(tg.texts_to(CHAT)),
                  timeout=20, what="the heartbeat and the cron answers")


def test_an_enabled_channel_without_a_token_stops_the_gateway_with_one_line(
        mofaclaw_home: Path, upstream: ScriptedUpstream) -> None:
    gw = GatewayProcess(mofaclaw_home, upstream.base_url, "[channels.telegram]\nenabled = true\n",
                        env={"TELEGRAM_BOT_TOKEN": ""})
    with pytest.raises(RuntimeError, match="has no token"):
        gw.start()
    assert "Traceback" not in gw.output
