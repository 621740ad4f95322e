"""The Telegram channel against a fake Bot API on loopback, with the real agent and the scripted upstream."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_harness import Harness, running_agent
from fake_telegram import BOT, FakeTelegram
from upstream import ScriptedUpstream

from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.channels.base import ChannelFatal
from mofaclaw.channels.manager import ChannelManager
from mofaclaw.channels.state import pairing_db
from mofaclaw.channels.telegram import TelegramChannel, TelegramSettings

CHAT = 42


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@dataclass
class Live:
    agent: Harness
    channel: TelegramChannel


@asynccontextmanager
async def telegram_agent(tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, home: Path,
                         allow_from: tuple[str, ...] = (str(CHAT),), **overrides: Any) -> AsyncIterator[Live]:
    """The agent with a Telegram channel polling the fake, run by a ChannelManager as the gateway does."""
    async with running_agent(upstream.base_url, tmp_path) as harness:
        options: dict[str, Any] = {"poll_timeout": 1, "stall_timeout": 5.0, "stream_edit_interval": 0.3,
                                   "retry_initial": 0.05, **overrides}
        settings = TelegramSettings(
            token=tg.token, workspace=harness.workspace, state_dir=tmp_path / "telegram-state",
            pairing_db=pairing_db(home), allow_from=allow_from, api_base=tg.api_base, **options)
        channel = TelegramChannel(settings, harness.bus)
        manager = ChannelManager(harness.bus, [channel], restart_initial=0.05)
        task = asyncio.create_task(manager.run())
        try:
            yield Live(harness, channel)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def user_texts(upstream: ScriptedUpstream) -> list[str]:
    """The last user message of every request the upstream received."""
    return [next(m["content"] for m in reversed(r["messages"]) if m["role"] == "user") for r in upstream.requests]


async def processed(tg: FakeTelegram, update_id: int) -> None:
    """Wait until the channel asked for the updates after `update_id`: it has handled that one."""
    await tg.wait_for(lambda: any(int(c.params.get("offset") or 0) > update_id for c in tg.calls_of("getUpdates")),
                      what=f"update {update_id} to be processed")


async def test_a_message_round_trip_with_typing_and_one_conversation_per_chat(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home) as live:
        tg.user_message("hello there")
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["echo: hello there"], what="the answer")
        assert any(c.params.get("action") == "typing" and str(c.params["chat_id"]) == str(CHAT)
                   for c in tg.calls_of("sendChatAction"))
        history = await live.agent.store.history(f"telegram:{CHAT}", 10)
        assert [(m.role, m.content) for m in history] == [("user", "hello there"), ("assistant", "echo: hello there")]


async def test_streaming_edits_one_message_at_a_bounded_rate(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    words = [f"word{i}" for i in range(60)]
    answer = " ".join(words)
    upstream.token_delay = 0.02  # the reply arrives as 60 deltas over about a second
    upstream.reply(answer)
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message("stream please")
        await tg.wait_for(lambda: tg.texts_to(CHAT) == [answer], what="the final streamed answer")
    sent = tg.sent_to(CHAT)
    assert len(sent) == 1  # one message, never one per token
    edits = len(tg.calls_of("editMessageText"))
    assert 1 <= edits < len(words) / 4, edits
    assert sent[0].edits == edits


async def test_a_long_answer_is_split_between_paragraphs(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    paragraphs = [" ".join(f"p{p}w{w}" for w in range(150)) for p in range(10)]  # ~10,000 characters
    upstream.reply("\n\n".join(paragraphs))
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message("tell me everything")
        await tg.wait_for(lambda: "p9w149" in " ".join(tg.texts_to(CHAT)), what="the last part")
    texts = tg.texts_to(CHAT)
    assert len(texts) >= 3 and all(len(t) <= 4096 for t in texts)
    for paragraph in paragraphs:
        assert sum(paragraph in t for t in texts) == 1  # whole, in one message
    assert " ".join(" ".join(texts).split()) == " ".join(paragraphs)


async def test_hostile_markdown_arrives_as_safe_text(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    upstream.reply('Run <script>alert("x")</script> **now and <b>then</b> & [x](javascript:alert(1))')
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message("be evil")
        await tg.wait_for(lambda: len(tg.texts_to(CHAT)) == 1, what="the answer")
    [sent] = tg.sent_to(CHAT)
    # every character the agent wrote, shown as text: no tag, no javascript link
    assert sent.text == 'Run <script>alert("x")</script> **now and <b>then</b> & [x](javascript:alert(1))'
    assert "<script" not in sent.raw and "<a " not in sent.raw
    assert all(c.status == 200 for c in tg.calls_of("sendMessage"))


async def test_html_refused_by_telegram_falls_back_to_plain_text(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    upstream.reply("**bold** answer")
    tg.fault("sendMessage", 400, description="Bad Request: can't parse entities: Unsupported start tag \"q\"")
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message("hi")
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["**bold** answer"], what="the plain-text answer")
    assert tg.sent_to(CHAT)[0].parse_mode is None


async def test_stop_cancels_the_running_turn(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    upstream.hang()
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message("think forever")
        await upstream.wait_for_requests(1)
        tg.user_message("/stop")
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["Stopped."], what="the stop confirmation")
        await upstream.wait_for_disconnects(1)  # the upstream request was abandoned, not left running
        tg.user_message("are you back?")
        await tg.wait_for(lambda: tg.texts_to(CHAT)[-1:] == ["echo: are you back?"], what="the next answer")


async def test_new_starts_a_new_conversation_and_help_lists_the_commands(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home) as live:
        tg.user_message("remember me")
        await tg.wait_for(lambda: len(tg.texts_to(CHAT)) == 1, what="the answer")
        tg.user_message("/new")
        await tg.wait_for(lambda: len(tg.texts_to(CHAT)) == 2, what="the /new answer")
        assert tg.texts_to(CHAT)[1].startswith("Started a new conversation")
        assert await live.agent.store.history(f"telegram:{CHAT}", 10) == []
        tg.user_message("/help")
        await tg.wait_for(lambda: len(tg.texts_to(CHAT)) == 3, what="the help")
        assert all(command in tg.texts_to(CHAT)[2] for command in ("/new", "/stop", "/help"))
    assert not any("/help" in str(r["messages"]) for r in upstream.requests)  # answered by the channel


async def test_a_stalled_poll_is_restarted_by_the_watchdog(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    tg.stall_polls(1)
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home, stall_timeout=2.0) as live:
        await tg.wait_for(lambda: tg.stalled_polls == 1, what="the stalled poll")
        tg.user_message("anyone there?")
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["echo: anyone there?"], timeout=15, what="the answer")
        assert live.channel.stalls == 1
    assert "restarting it" in caplog.text


async def test_flood_control_retry_after_is_honoured(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    tg.fault("sendMessage", 429, retry_after=1)
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message("hurry")
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["echo: hurry"], what="the answer")
    refused, accepted = tg.calls_of("sendMessage")
    assert (refused.status, accepted.status) == (429, 200)
    assert accepted.at - refused.at >= 0.9  # it waited as asked, instead of hammering


async def test_network_errors_while_polling_are_retried(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    tg.fault("getUpdates", 502, times=3)
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message("still there?")
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["echo: still there?"], what="the answer")
    assert [c.status for c in tg.calls_of("getUpdates")][:3] == [502, 502, 502]


async def test_a_restart_neither_replays_nor_loses_messages(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        first = tg.user_message("one")
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["echo: one"], what="the first answer")
        await processed(tg, first)
    tg.user_message("two")  # sent while the gateway is down
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["echo: one", "echo: two"], what="the second answer")
    assert user_texts(upstream) == ["one", "two"]


async def test_a_photo_is_downloaded_into_the_workspace_and_given_to_the_agent(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    photo = b"\xff\xd8\xff\xe0 a tiny fake jpeg"
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home) as live:
        tg.user_message(photo=photo, caption="what is this?")
        await upstream.wait_for_requests(1)
        await tg.wait_for(lambda: len(tg.texts_to(CHAT)) == 1, what="the answer")
        [text] = user_texts(upstream)
        assert text.startswith("what is this?")
        match = re.search(r"\[photo: (media/telegram/42/\S+\.jpg)\]", text)
        assert match, text
        assert (live.agent.workspace / match.group(1)).read_bytes() == photo


async def test_documents_and_voice_notes_are_downloaded_too(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home) as live:
        tg.user_message(document=("report.pdf", b"%PDF-1.7 fake"), caption="summarise")
        tg.user_message(voice=b"OggS fake voice")
        await tg.wait_for(lambda: len(tg.texts_to(CHAT)) == 2, what="both answers")
        document, voice = user_texts(upstream)
        doc_path = re.search(r"\[document: (\S+\.pdf)\]", document)
        voice_path = re.search(r"\[voice: (\S+\.ogg)\]", voice)
        assert document.startswith("summarise") and doc_path and voice_path, (document, voice)
        assert (live.agent.workspace / doc_path.group(1)).read_bytes() == b"%PDF-1.7 fake"
        assert (live.agent.workspace / voice_path.group(1)).read_bytes() == b"OggS fake voice"


async def test_a_file_over_the_size_cap_is_refused_without_a_download(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home, max_download_bytes=10):
        tg.user_message(photo=b"x" * 100)
        await tg.wait_for(lambda: len(tg.texts_to(CHAT)) == 1, what="the refusal")
    assert tg.texts_to(CHAT)[0].startswith("I can't take that photo")
    assert tg.calls_of("getFile") == [] and upstream.request_count == 0


async def test_in_groups_only_mentions_and_replies_reach_the_agent(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    group = -100123
    mention = "@" + BOT["username"]
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message("chatting among ourselves", chat_id=group, chat_type="group")
        tg.user_message(f"{mention} what time is it?", chat_id=group, chat_type="group",
                        entities=[{"type": "mention", "offset": 0, "length": len(mention)}])
        await tg.wait_for(lambda: len(tg.texts_to(group)) == 1, what="the answer to the mention")
        bot_message = {"message_id": 1, "date": 0, "chat": {"id": group, "type": "group"}, "from": BOT,
                       "text": "echo: what time is it?"}
        tg.user_message("and tomorrow?", chat_id=group, chat_type="group", reply_to=bot_message)
        await tg.wait_for(lambda: len(tg.texts_to(group)) == 2, what="the answer to the reply")
    assert tg.texts_to(group)[0] == "echo: what time is it?"
    # the quoted message is context for the agent
    assert user_texts(upstream) == ["what time is it?", "> echo: what time is it?\n\nand tomorrow?"]


async def test_unknown_senders_get_one_code_and_approval_with_the_cli_admits_them(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path) -> None:
    stranger = 77
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home, allow_from=("@Alice",)):
        tg.user_message("hi, I'm alice", chat_id=CHAT, user_id=CHAT, username="alice")  # allowed by username
        for text in ("hello?", "anyone?", "please answer"):
            last = tg.user_message(text, chat_id=stranger, user_id=stranger, username="mallory")
        await processed(tg, last)
        await tg.wait_for(lambda: tg.texts_to(CHAT) == ["echo: hi, I'm alice"], what="alice's answer")
        [reply] = tg.texts_to(stranger)  # one reply, however many messages
        code = re.search(r"pairing code is ([A-Z0-9]{8})", reply)
        assert code, reply
        assert user_texts(upstream) == ["hi, I'm alice"]  # nothing of the stranger's reached the agent

        approved = await asyncio.to_thread(cli, mofaclaw_home, "pairing", "approve", code.group(1).lower())
        assert approved.returncode == 0 and "77 (@mallory)" in approved.stdout, approved.stderr
        tg.user_message("now?", chat_id=stranger, user_id=stranger, username="mallory")
        await tg.wait_for(lambda: tg.texts_to(stranger)[-1:] == ["echo: now?"], what="the approved answer")
        listed = await asyncio.to_thread(cli, mofaclaw_home, "pairing", "list")
        assert "approved" in listed.stdout and "mallory" in listed.stdout

        revoked = await asyncio.to_thread(cli, mofaclaw_home, "pairing", "revoke", "@mallory")
        assert revoked.returncode == 0, revoked.stderr
        tg.user_message("still me", chat_id=stranger, user_id=stranger, username="mallory")
        await tg.wait_for(lambda: "pairing code" in tg.texts_to(stranger)[-1], what="a new code")
    assert "still me" not in user_texts(upstream)
    assert os.stat(pairing_db(mofaclaw_home)).st_mode & 0o777 == 0o600


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mofaclaw", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MOFACLAW_HOME": str(home), "COLUMNS": "200"})


async def test_the_token_never_reaches_the_logs(
        tg: FakeTelegram, upstream: ScriptedUpstream, tmp_path: Path, mofaclaw_home: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tg.fault("getUpdates", 502)
    async with telegram_agent(tg, upstream, tmp_path, mofaclaw_home):
        tg.user_message(photo=b"jpeg bytes", caption="look")  # a file URL carries the token too
        await tg.wait_for(lambda: len(tg.texts_to(CHAT)) == 1, what="the answer")
    assert "HTTP Request" in caplog.text  # httpx did log every request URL...
    assert tg.token not in caplog.text  # ...without the token
    assert [r.msg for r in caplog.records if tg.token in str(r.msg) + str(r.args)] == []  # nor later
    status_file = tmp_path / "telegram-state" / "status.json"
    assert '"bot": "@claw_test_bot"' in status_file.read_text() and tg.token not in status_file.read_text()


async def test_a_rejected_token_turns_the_channel_off_with_one_clear_error(tg: FakeTelegram, tmp_path: Path) -> None:
    settings = TelegramSettings(token="111:not-the-token", workspace=tmp_path, state_dir=tmp_path / "state",
                                pairing_db=tmp_path / "pairing.db", api_base=tg.api_base)
    channel = TelegramChannel(settings, InMemoryBus())
    with pytest.raises(ChannelFatal, match="rejected the bot token"):
        await channel.start()
    await channel.stop()
    status = (tmp_path / "state" / "status.json").read_text()
    assert '"state": "failed"' in status and "not-the-token" not in status
