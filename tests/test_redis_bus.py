"""The Redis bus against a real redis-server: several RedisBus replicas in one process share turns, replies,
conversations and the leader lease, survive a dead replica and a Redis restart, and never show the password."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from agent_harness import scripted_config
from upstream import ScriptedUpstream

from mofaclaw.bus.codec import decode_inbound, decode_outbound, encode_inbound, encode_outbound
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.errors import BackendUnavailable, TurnErrorCode
from mofaclaw.runtime import build_runtime
from mofaclaw.types import ChatMessage, ClientTools, GenerationOptions, ToolCall, ToolSpec, Usage

redis = pytest.importorskip("redis", reason="the redis client is not installed (pip install 'mofaclaw[cluster]')")
from mofaclaw.bus.redis import DIED_MID_TURN, RedisBus  # noqa: E402

if TYPE_CHECKING:
    from redis_server import RedisServer


LEASE = 1.0  # seconds: a dead replica's turns and leases pass on within about this long


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


class Replica:
    """A gateway replica in miniature: a RedisBus, its run() task, and an agent loop that runs each turn
    inside bus.turn(), answers it to the replica in reply_to, and cancels a turn when told to."""

    def __init__(self, url: str, ran: list[tuple[str, str]], lease: float = LEASE) -> None:
        self.bus = RedisBus(url, lease=lease, prefix="test")
        self.name = self.bus.replica
        self.ran = ran  # (replica, content) of every turn that started, shared by the replicas of a test
        self.refused: list[str] = []
        self.cancels: list[str] = []
        self.entered: set[str] = set()
        self.replies = self.bus.subscribe("api")
        self.active: dict[str, int] = {}
        self.overlaps = 0
        self._turns: dict[str, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None

    async def start(self, serve: bool = True) -> Replica:
        await self.bus.connect()
        self._runner = asyncio.create_task(self.bus.run())
        if serve:
            self.serve()
        return self

    def serve(self) -> None:
        self._consumer = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        while True:
            message = await self.bus.consume_inbound()
            if message.kind == "cancel":
                self.cancels.append(message.request_id)
                task = self._turns.get(message.request_id)
                if task is not None:
                    task.cancel()
                continue
            self._turns[message.request_id] = asyncio.create_task(self._turn(message))

    async def _turn(self, message: InboundMessage) -> None:
        self.entered.add(message.request_id)
        try:
            await self._run(message)
        except BackendUnavailable as exc:  # as the agent loop does: the client is told
            await self.bus.publish_outbound(OutboundMessage(
                "api", message.chat_id, str(exc), kind="error", request_id=message.request_id,
                error_code=TurnErrorCode.BACKEND_UNAVAILABLE, reply_to=message.reply_to))

    async def _run(self, message: InboundMessage) -> None:
        async with self.bus.turn(message) as go:
            if not go:
                self.refused.append(message.content)
                return
            self.ran.append((self.name, message.content))
            self.active[message.session_key] = self.active.get(message.session_key, 0) + 1
            if any(count > 1 for count in self.active.values()):
                self.overlaps += 1
            try:
                if message.content.startswith("hang"):
                    await asyncio.Event().wait()
                await asyncio.sleep(0)  # give another replica the chance to interleave, were it allowed to
            finally:
                self.active[message.session_key] -= 1
            await self.bus.publish_outbound(OutboundMessage(
                "api", message.chat_id, f"done {message.content}", request_id=message.request_id,
                reply_to=message.reply_to))

    def kill(self) -> None:
        """Like SIGKILL: the heartbeat and the agent loop stop; nothing is released, acknowledged or closed."""
        for task in (self._runner, self._consumer):
            if task is not None:
                task.cancel()

    async def stop(self) -> None:
        tasks = [t for t in (self._runner, self._consumer, *self._turns.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.bus.close()


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[Callable[..., Replica]]:
    """make(ran) -> a Replica on the test server (call `await replica.start()`); all stopped after the test."""
    made: list[Replica] = []

    def make(ran: list[tuple[str, str]] | None = None, lease: float = LEASE) -> Replica:
        replica = Replica(redis_url, ran if ran is not None else [], lease)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        await replica.stop()


def turn(content: str, chat_id: str = "c1") -> InboundMessage:
    return InboundMessage("api", "user", chat_id, content)


async def reply(replica: Replica) -> OutboundMessage:
    return await asyncio.wait_for(replica.replies.get(), 15)


async def readers_blocked(server: RedisServer, count: int) -> None:
    """Wait until `count` replicas block on the stream, so the next turns spread over all of them."""
    with server.client() as client:
        await until(lambda: sum(c["cmd"] == "xreadgroup" for c in client.client_list()) >= count)


def test_codec_round_trips_every_field() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    history = (ChatMessage("system", "be brief"), ChatMessage("user", "hi"),
               ChatMessage("assistant", None, (call,)), ChatMessage("tool", "sunny", (), "call_1", "get_weather"))
    inbound = InboundMessage(
        "api", "u1", "chat", "weather?", media=("/tmp/a.png",), metadata={"k": [1, "two"]}, request_id="r1",
        session_key_override="api:conv", history=history, instructions="in French",
        options=GenerationOptions(0.3, 0.9, 100, ("END",)), live_updates=False,
        client_tools=ClientTools((ToolSpec("get_weather", "the weather", {"type": "object"}),),
                                 {"type": "function", "function": {"name": "get_weather"}}, False),
        tool_results=(ChatMessage("tool", "rainy", (), "call_0"),), reply_to="host-1-abc",
    )
    assert decode_inbound(encode_inbound(inbound)) == inbound
    cancel = InboundMessage("api", "u1", "chat", "", kind="cancel")
    assert decode_inbound(encode_inbound(cancel)) == cancel
    outbound = OutboundMessage(
        "api", "chat", "it is sunny", kind="error", request_id="r1", usage=Usage(12, 3), finish_reason="tool_calls",
        error_code=TurnErrorCode.PROVIDER_TIMEOUT, status=504, metadata={"m": 1}, media=("/tmp/b.png",),
        tool_name="exec", tool_summary="ls", tool_calls=(call,), messages=history, reply_to="host-2-def",
    )
    assert decode_outbound(encode_outbound(outbound)) == outbound
    assert decode_outbound(encode_outbound(OutboundMessage("cli", "c", "hi"))) == OutboundMessage("cli", "c", "hi")


async def test_each_turn_is_claimed_by_one_replica_and_answered_to_its_sender(cluster: Callable[..., Replica],
                                                                             redis_server: RedisServer) -> None:
    ran: list[tuple[str, str]] = []
    a, b, c = [await cluster(ran).start() for _ in range(3)]
    await readers_blocked(redis_server, 3)
    for i in range(9):
        await (a if i % 2 else b).bus.publish_inbound(turn(f"t{i}", chat_id=f"chat{i}"))
    answers_a = [(await reply(a)).content for _ in range(4)]
    answers_b = [(await reply(b)).content for _ in range(5)]
    assert sorted(answers_a) == [f"done t{i}" for i in (1, 3, 5, 7)]
    assert sorted(answers_b) == [f"done t{i}" for i in (0, 2, 4, 6, 8)]
    assert sorted(content for _, content in ran) == [f"t{i}" for i in range(9)]  # each exactly once
    assert {name for name, _ in ran} == {a.name, b.name, c.name}  # spread over the replicas
    assert c.replies.empty()


async def test_turns_of_one_conversation_keep_their_order_across_replicas(cluster: Callable[..., Replica],
                                                                        redis_server: RedisServer) -> None:
    ran: list[tuple[str, str]] = []
    replicas = [await cluster(ran).start() for _ in range(3)]
    await readers_blocked(redis_server, 3)
    for i in range(30):
        await replicas[i % 3].bus.publish_inbound(turn(f"t{i:02d}"))
    for i, replica in enumerate(replicas):
        answers = sorted([(await reply(replica)).content for _ in range(10)])
        assert answers == [f"done t{n:02d}" for n in range(i, 30, 3)]
    assert [content for _, content in ran] == [f"t{i:02d}" for i in range(30)]
    assert len({name for name, _ in ran}) == 3  # the conversation really moved between replicas
    assert sum(r.overlaps for r in replicas) == 0


async def test_a_dead_replicas_turns_pass_on(cluster: Callable[..., Replica], redis_server: RedisServer) -> None:
    ran: list[tuple[str, str]] = []
    doomed = await cluster(ran).start()
    client = await cluster(ran).start(serve=False)  # holds the client's connection
    hanging, queued = turn("hang: started when its replica dies"), turn("queued behind it")
    await client.bus.publish_inbound(hanging)
    await client.bus.publish_inbound(queued)
    await until(lambda: {hanging.request_id, queued.request_id} <= doomed.entered and len(ran) == 1)
    doomed.kill()
    heir = await cluster(ran).start()

    answers = {m.request_id: m for m in [await reply(client), await reply(client)]}
    failed = answers[hanging.request_id]
    assert (failed.kind, failed.error_code, failed.content) == ("error", TurnErrorCode.BACKEND_UNAVAILABLE,
                                                                DIED_MID_TURN)
    assert answers[queued.request_id].content == "done queued behind it"
    assert ran == [(doomed.name, hanging.content), (heir.name, queued.content)]  # the started one never ran twice
    assert doomed.name not in (await heir.bus.status()).replicas
    with redis_server.client() as redis_client:  # the dead replica leaves no consumer behind in the group
        await until(lambda: doomed.name not in {c["name"] for c in redis_client.xinfo_consumers("test:inbound",
                                                                                                 "agents")})


async def test_a_turn_cancelled_before_it_starts_is_refused_and_frees_the_conversation(
        cluster: Callable[..., Replica]) -> None:
    ran: list[tuple[str, str]] = []
    sender = await cluster(ran).start(serve=False)
    first, cancelled, third = turn("first"), turn("cancelled"), turn("third")
    for message in (first, cancelled, third):
        await sender.bus.publish_inbound(message)
    await sender.bus.publish_inbound(InboundMessage("api", "user", "c1", "", request_id=cancelled.request_id,
                                                    kind="cancel"))
    worker = await cluster(ran).start()
    assert (await reply(sender)).content == "done first"
    assert (await reply(sender)).content == "done third"
    assert [content for _, content in ran] == ["first", "third"]
    await until(lambda: worker.refused == ["cancelled"])


async def test_a_cancel_reaches_the_replica_running_the_turn(cluster: Callable[..., Replica]) -> None:
    ran: list[tuple[str, str]] = []
    sender = await cluster(ran).start(serve=False)
    worker = await cluster(ran).start()
    hanging, after = turn("hang until cancelled"), turn("after it")
    await sender.bus.publish_inbound(hanging)
    await until(lambda: len(ran) == 1)
    await sender.bus.publish_inbound(after)
    await sender.bus.publish_inbound(InboundMessage("api", "user", "c1", "", request_id=hanging.request_id,
                                                    kind="cancel"))
    assert (await reply(sender)).content == "done after it"  # the conversation was released by the cancel
    assert hanging.request_id in worker.cancels
    assert [content for _, content in ran] == ["hang until cancelled", "after it"]


async def test_an_ask_turn_and_a_stream_turn_of_one_conversation_take_turns(cluster: Callable[..., Replica]) -> None:
    ran: list[tuple[str, str]] = []
    cron = await cluster(ran).start(serve=False)
    worker = await cluster(ran).start()
    release = asyncio.Event()

    async def scheduled_turn() -> None:  # what agent.ask does for cron and the heartbeat
        async with cron.bus.turn(turn("cron job")) as go:
            assert go
            ran.append((cron.name, "cron job"))
            await release.wait()

    task = asyncio.create_task(scheduled_turn())
    await until(lambda: len(ran) == 1)
    await cron.bus.publish_inbound(turn("user message"))
    await until(lambda: len(worker.entered) == 1)
    assert len(ran) == 1  # the user's turn waits for the scheduled one
    release.set()
    assert (await reply(cron)).content == "done user message"
    await task
    assert [content for _, content in ran] == ["cron job", "user message"]


async def test_one_leader_at_a_time_and_a_dead_leader_is_replaced(cluster: Callable[..., Replica]) -> None:
    replicas = [await cluster().start(serve=False) for _ in range(3)]
    leading: list[str] = []

    def work_of(replica: Replica) -> Callable[[], asyncio.Future[None]]:
        async def work() -> None:
            leading.append(replica.name)
            await asyncio.Event().wait()
        return work  # type: ignore[return-value]

    tasks = [asyncio.create_task(r.bus.run_as_leader(work_of(r))) for r in replicas]
    try:
        await until(lambda: len(leading) == 1)
        # Several lease periods pass with the lease renewed: nobody else starts.
        deadline = time.monotonic() + 3 * LEASE
        while time.monotonic() < deadline:
            assert len(leading) == 1
            await asyncio.sleep(0.05)
        first = next(r for r in replicas if r.name == leading[0])
        first.kill()
        await until(lambda: len(leading) == 2)
        assert leading[1] != leading[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_leader_cut_off_from_redis_stops_leading_and_leads_again_after(
        cluster: Callable[..., Replica], redis_server: RedisServer) -> None:
    replica = await cluster().start(serve=False)
    started: list[str] = []
    stopped: list[str] = []

    async def work() -> None:
        started.append("cron")
        try:
            await asyncio.Event().wait()
        finally:
            stopped.append("cron")

    task = asyncio.create_task(replica.bus.run_as_leader(work))
    try:
        await until(lambda: len(started) == 1)
        redis_server.stop()
        await until(lambda: len(stopped) == 1)  # it cannot be sure it still leads: cron stops here
        redis_server.start()
        await until(lambda: len(started) == 2)  # and comes back without a restart
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_turn_queued_when_redis_restarts_empty_gets_an_error_not_a_hang(
        cluster: Callable[..., Replica], redis_server: RedisServer) -> None:
    ran: list[tuple[str, str]] = []
    worker = await cluster(ran).start()
    hanging, queued = turn("hang: holds the conversation"), turn("queued behind it")
    await worker.bus.publish_inbound(hanging)
    await worker.bus.publish_inbound(queued)
    await until(lambda: queued.request_id in worker.entered and len(ran) == 1)
    redis_server.stop()
    redis_server.start()  # without its data: the queued turn is gone from Redis
    answer = await reply(worker)
    assert (answer.request_id, answer.kind, answer.error_code) == (queued.request_id, "error",
                                                                   TurnErrorCode.BACKEND_UNAVAILABLE)
    assert redis_server.password not in answer.content
    assert [content for _, content in ran] == [hanging.content]


async def test_redis_down_fails_fast_and_the_bus_recovers(cluster: Callable[..., Replica], redis_server: RedisServer,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    sender = await cluster().start(serve=False)
    worker = await cluster().start()
    redis_server.stop()
    with pytest.raises(BackendUnavailable) as failure:
        await sender.bus.publish_inbound(turn("while Redis is down"))
    assert "\n" not in str(failure.value)
    assert redis_server.password not in str(failure.value)
    assert f"127.0.0.1:{redis_server.port}" in str(failure.value)
    with pytest.raises(BackendUnavailable):
        await sender.bus.status()

    redis_server.start()  # empty: it lost the stream, the group and every key

    async def both_alive() -> bool:
        with suppress(BackendUnavailable):
            return {sender.name, worker.name} <= set((await sender.bus.status()).replicas)
        return False

    deadline = time.monotonic() + 15
    while not await both_alive():
        assert time.monotonic() < deadline, "the replicas did not come back"
        await asyncio.sleep(0.05)
    await sender.bus.publish_inbound(turn("after the restart"))
    assert (await reply(sender)).content == "done after the restart"
    # Each background loop said once that Redis was gone, not once per retry, and never the password.
    retries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Retrying" in r.getMessage()]
    assert retries
    assert len(retries) == len({message.split(":")[0] for message in retries})
    assert not any(redis_server.password in r.getMessage() for r in caplog.records)


async def test_connect_and_status_never_show_the_password(redis_server: RedisServer, redis_url: str) -> None:
    bus = RedisBus(redis_url, lease=LEASE, prefix="test")
    try:
        await bus.connect()
        status = await bus.status()
        assert status.backend == "redis"
        assert status.where == f"redis://127.0.0.1:{redis_server.port}/0"
        assert status.replicas == (bus.replica,)
    finally:
        await bus.close()

    unreachable = RedisBus(f"redis://:{redis_server.password}@127.0.0.1:1/0", lease=LEASE)
    try:
        with pytest.raises(BackendUnavailable) as failure:
            await unreachable.connect()
        assert str(failure.value).startswith("Redis at redis://127.0.0.1:1/0 cannot be reached")
        assert redis_server.password not in str(failure.value)
    finally:
        await unreachable.close()

    wrong = RedisBus(f"redis://:not-{redis_server.password}@127.0.0.1:{redis_server.port}/0", lease=LEASE)
    try:
        with pytest.raises(BackendUnavailable) as failure:
            await wrong.connect()
        assert redis_server.password not in str(failure.value)
    finally:
        await wrong.close()


async def test_the_real_agent_loop_runs_a_turn_sent_by_another_replica(redis_url: str, upstream: ScriptedUpstream,
                                                                       tmp_path: Path) -> None:
    sender = RedisBus(redis_url, lease=LEASE, prefix="test")  # the replica holding the client's connection
    worker = RedisBus(redis_url, lease=LEASE, prefix="test")  # the replica whose agent runs the turn
    answers = sender.subscribe("api")
    runtime = build_runtime(scripted_config(upstream.base_url), home=tmp_path / "worker", bus=worker)
    for bus in (sender, worker):
        await bus.connect()
    background = [asyncio.create_task(bus.run()) for bus in (sender, worker)]
    try:
        async with runtime.running():
            upstream.reply("Hello from the other replica")
            first = InboundMessage("api", "u1", "c1", "hi", live_updates=False)
            await sender.publish_inbound(first)
            answer = await asyncio.wait_for(answers.get(), 15)
            assert (answer.kind, answer.request_id, answer.content) == ("message", first.request_id,
                                                                        "Hello from the other replica")
            assert [m.content for m in await runtime.store.history("api:c1", 10)] == ["hi",
                                                                                       "Hello from the other replica"]

            upstream.hang()  # the next turn hangs in the model until the client gives up
            hung = InboundMessage("api", "u1", "c1", "are you there?")
            await sender.publish_inbound(hung)
            await upstream.wait_for_requests(2, timeout=15)
            await sender.publish_inbound(InboundMessage("api", "u1", "c1", "", request_id=hung.request_id,
                                                        kind="cancel"))
            await upstream.wait_for_disconnects(1, timeout=15)  # the cancel stopped it on the worker
            upstream.reply("Still here")
            after = InboundMessage("api", "u1", "c1", "and now?", live_updates=False)
            await sender.publish_inbound(after)
            while (answer := await asyncio.wait_for(answers.get(), 15)).request_id != after.request_id:
                assert answer.request_id == hung.request_id and answer.kind in ("delta", "progress")
            assert answer.content == "Still here"
            # The cancelled turn left nothing in the conversation.
            assert [m.content for m in await runtime.store.history("api:c1", 10)] == [
                "hi", "Hello from the other replica", "and now?", "Still here"]
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for bus in (sender, worker):
            await bus.close()
