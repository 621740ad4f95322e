"""Three real `mofaclaw gateway` processes on one real redis-server and one real PostgreSQL: turns of a
conversation sent to different replicas run one at a time and are all kept; a replica killed mid-turn
leaves no half turn and the others go on; cron fires once per job; a lost backend is a 503, then heals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest
from fake_telegram import FakeTelegram
from gateway_harness import GatewayProcess
from postgres_server import PostgresServer
from redis_server import RedisServer
from upstream import Hang, ScriptedUpstream

LEASE = 2.0  # seconds: a dead replica's claims and leases pass on after this (short, for the tests)

StartCluster = Callable[..., list[GatewayProcess]]


def cluster_config(redis_url: str, dsn: str, prefix: str, extra: str = "") -> str:
    return (f'[bus]\nbackend = "redis"\nurl = "{redis_url}"\nlease = {LEASE}\nprefix = "{prefix}"\n\n'
            f'[session]\nbackend = "postgres"\ndsn = "{dsn}"\npool_size = 4\n\n'
            f"[heartbeat]\nenabled = false\n\n{extra}")


@pytest.fixture
def prefix() -> str:
    """The cluster's Redis key namespace: each test its own, on the one redis-server of the run."""
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture
def start_cluster(tmp_path: Path, upstream: ScriptedUpstream, redis_server: RedisServer,
                  postgres_dsn: str, prefix: str) -> Iterator[StartCluster]:
    """Start n replicas, each with its own home (nothing shared through the file system), all at once."""
    started: list[GatewayProcess] = []

    def start(n: int = 3, extra: str = "") -> list[GatewayProcess]:
        config = cluster_config(redis_server.url, postgres_dsn, prefix, extra)
        # A window wider than the tests' conversations: every turn sees the whole history, and no memory
        # consolidation call joins the upstream's record.
        env = {"MOFACLAW_AGENTS__DEFAULTS__HISTORY_WINDOW": "200"}
        replicas = [GatewayProcess(tmp_path / f"replica{len(started) + i}", upstream.base_url, config, env)
                    for i in range(n)]
        started.extend(replicas)
        # Started together, so they race to migrate the fresh database: the lock must make that safe.
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda r: r.start(timeout=60), replicas))
        return replicas

    yield start
    for replica in started:
        replica.stop()  # a killed one too: its output pipe is closed


def ask(replica: GatewayProcess, conversation: str, text: str, **options: object) -> str:
    reply = replica.client(api_key="unused", max_retries=0, **options).chat.completions.create(
        model="mofaclaw", messages=[{"role": "user", "content": text}], extra_body={"conversation_id": conversation})
    return reply.choices[0].message.content or ""


def stored_texts(replica: GatewayProcess, conversation: str) -> list[tuple[str, str]]:
    """(role, text) of every message of the conversation, oldest first, as this replica reads them."""
    items: list[tuple[str, str]] = []
    after: str | None = None
    while True:
        params: dict[str, str | int] = {"order": "asc", "limit": 100, **({"after": after} if after else {})}
        page = httpx.get(f"{replica.url}/conversations/{conversation}/items", params=params).json()
        items += [(i["role"], i["content"][0]["text"]) for i in page["data"] if i["type"] == "message"]
        if not page["has_more"]:
            return items
        after = page["last_id"]


def new_conversation(replica: GatewayProcess) -> str:
    return httpx.post(f"{replica.url}/conversations", json={}).json()["id"]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_turns_of_one_conversation_across_replicas_run_one_at_a_time_and_are_all_kept(
    start_cluster: StartCluster, upstream: ScriptedUpstream
) -> None:
    replicas = start_cluster(3)
    conversation = new_conversation(replicas[0])
    texts = [f"turn {i}" for i in range(30)]
    with ThreadPoolExecutor(30) as pool:  # all queued at once, ten on each replica
        answers = list(pool.map(lambda i: ask(replicas[i % 3], conversation, texts[i], timeout=120), range(30)))
    assert answers == [f"echo: {t}" for t in texts]

    # Serialized: every upstream call saw exactly the turns committed before it (none ran beside another).
    requests = upstream.requests
    assert len(requests) == 30
    for n, body in enumerate(requests):
        history = [m for m in body["messages"] if m["role"] != "system"]
        assert len(history) == 2 * n + 1, f"call {n} saw {len(history)} messages: a turn ran beside another"
    order = [next(m["content"] for m in reversed(b["messages"]) if m["role"] == "user") for b in requests]
    assert sorted(order, key=texts.index) == texts  # each turn ran once

    # Kept, in the order they ran, and the same from every replica (a 200 means committed everywhere).
    expected = [pair for text in order for pair in (("user", text), ("assistant", f"echo: {text}"))]
    for replica in replicas:
        assert stored_texts(replica, conversation) == expected


def test_a_replica_killed_mid_turn_leaves_no_half_turn_and_the_others_serve_its_queue(
    start_cluster: StartCluster, upstream: ScriptedUpstream, redis_server: RedisServer, prefix: str
) -> None:
    replicas = start_cluster(3)
    conversation = new_conversation(replicas[0])
    assert ask(replicas[0], conversation, "kept before") == "echo: kept before"

    upstream.enqueue(Hang())  # the next turn hangs inside its upstream call, wherever it runs
    with ThreadPoolExecutor(4) as pool:
        doomed = pool.submit(ask, replicas[1], conversation, "doomed", timeout=60)
        wait_for(lambda: upstream.request_count == 2, what="the doomed turn to reach the upstream")
        queued = [pool.submit(ask, replicas[i % 3], conversation, f"queued {i}", timeout=60) for i in range(3)]
        runner = replica_running(replicas, redis_server, prefix)
        runner.proc.send_signal(signal.SIGKILL)  # no cleanup: its claims and leases must time out
        runner.proc.wait(10)

        queued_answers = sorted(f.result(timeout=60) for f in queued if runner is not replicas[queued.index(f) % 3])
        try:
            doomed.result(timeout=60)
            raise AssertionError("the doomed turn cannot have succeeded: its replica was killed")
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            if isinstance(exc, openai.APIStatusError):
                assert exc.status_code == 503 and "stopped before it ended" in exc.message
    alive = [r for r in replicas if r is not runner]
    stored = stored_texts(alive[0], conversation)
    assert ("user", "doomed") not in stored and stored[:2] == [("user", "kept before"),
                                                                ("assistant", "echo: kept before")]
    assert all(("user", a.removeprefix("echo: ")) in stored for a in queued_answers)
    assert len(stored) % 2 == 0 and all(r == ("user", "assistant")[i % 2] for i, (r, _) in enumerate(stored))
    assert stored == stored_texts(alive[1], conversation)
    assert ask(alive[1], new_conversation(alive[0]), "still serving") == "echo: still serving"


def replica_running(replicas: list[GatewayProcess], redis_server: RedisServer, prefix: str) -> GatewayProcess:
    """The replica whose turn runs now: the holder of the one conversation lease (its token names the
    replica, whose name holds its process id)."""
    with redis_server.client() as client:
        leases = client.keys(f"{prefix}:conv:*:lease")
        assert len(leases) == 1, leases
        token = client.get(leases[0])
    pid = int(token.split("/")[0].rsplit("-", 2)[1])
    return next(r for r in replicas if r.proc is not None and r.proc.pid == pid)


def test_cron_fires_once_per_job_across_replicas(start_cluster: StartCluster, upstream: ScriptedUpstream) -> None:
    replicas = start_cluster(3, extra="[cron]\nenabled = true\n")
    when = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    # Added with one replica's config by the CLI: they reach the cluster through PostgreSQL.
    once = cron(replicas[2], "add", "--name", "once", "--message", "scheduled hello", "--at", when).split()[2]
    every = cron(replicas[2], "add", "--name", "often", "--message", "every second", "--every", "1").split()[2]
    ran_once, ran_every = f"cron job {once} (once) ran: ok", f"cron job {every} (often) ran: ok"
    wait_for(lambda: any(ran_once in r.output for r in replicas), timeout=30, what="the one-time job to run")
    wait_for(lambda: sum(r.output.count(ran_every) for r in replicas) >= 3, timeout=30, what="three runs")
    cron(replicas[0], "remove", every)

    # Each run happened once, on one replica (the leader): no other replica ran a copy.
    assert sum(r.output.count(ran_once) for r in replicas) == 1
    runs = [r.output.count(ran_every) for r in replicas]
    assert sorted(runs)[:2] == [0, 0]
    calls = [json.dumps(b["messages"]) for b in upstream.requests]
    assert sum("scheduled hello" in c for c in calls) == 1
    assert sum("every second" in c for c in calls) in (sum(runs), sum(runs) + 1)  # + one still running
    # The finished one-time job is gone for every replica's config: one shared job table.
    assert "No scheduled jobs." in cron(replicas[1], "list", "--all")


def test_status_shows_the_backends_and_the_replicas_alive_without_passwords(
    start_cluster: StartCluster, redis_server: RedisServer
) -> None:
    replicas = start_cluster(2)
    shown = subprocess.run([sys.executable, "-m", "mofaclaw", "status"], env={**replicas[0].env, "COLUMNS": "300"},
                           capture_output=True, text=True, timeout=60, check=True).stdout
    flat = " ".join(shown.split())
    pids = [str(r.proc.pid) for r in replicas if r.proc is not None]
    assert "redis" in flat and "postgres" in flat and all(f"-{pid}-" in flat for pid in pids), shown
    assert redis_server.password not in shown and "s3cret" not in shown


def cron(replica: GatewayProcess, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mofaclaw", "cron", *args], env=replica.env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_redis_lost_is_a_503_within_seconds_and_the_replicas_heal(
    start_cluster: StartCluster, redis_server: RedisServer
) -> None:
    replica, = start_cluster(1)
    conversation = new_conversation(replica)
    assert ask(replica, conversation, "before") == "echo: before"
    redis_server.stop()
    try:
        with pytest.raises(openai.APIStatusError) as lost:
            ask(replica, conversation, "while down", timeout=15)
        assert lost.value.status_code == 503 and lost.value.body["code"] == "backend_unavailable"
    finally:
        redis_server.start()
    wait_for(lambda: _answers(replica, conversation), timeout=30, what="the replica to serve again")
    stored = stored_texts(replica, conversation)
    assert ("user", "while down") not in stored and stored[:2] == [("user", "before"), ("assistant", "echo: before")]


def _answers(replica: GatewayProcess, conversation: str) -> bool:
    try:
        return ask(replica, conversation, "after", timeout=10) == "echo: after"
    except openai.APIStatusError:
        return False


def test_an_unreachable_backend_at_start_is_one_line_and_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(cluster_config("redis://:hunter2-secret@127.0.0.1:1/0",
                                                     "postgresql://u:pw-secret@127.0.0.1:1/db", "x"))
    result = subprocess.run([sys.executable, "-m", "mofaclaw", "gateway", "--port", "0"],
                            env={**os.environ, "MOFACLAW_HOME": str(home)}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Redis at redis://127.0.0.1:1/0 cannot be reached" in errors[0], result.stderr
    assert "hunter2" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_postgres_lost_is_a_503_within_seconds_and_nothing_half_stored(
    start_cluster: StartCluster, postgres_server: PostgresServer
) -> None:
    replica, = start_cluster(1)
    conversation = new_conversation(replica)
    assert ask(replica, conversation, "before") == "echo: before"
    postgres_server.stop()
    try:
        with pytest.raises(openai.APIStatusError) as lost:
            ask(replica, conversation, "while down", timeout=30)
        assert lost.value.status_code == 503 and lost.value.body["code"] == "backend_unavailable"
        listed = httpx.get(f"{replica.url}/conversations", timeout=30)
        assert listed.status_code == 503 and listed.json()["error"]["code"] == "backend_unavailable"
        assert "s3cret" not in listed.text + replica.output
    finally:
        postgres_server.start()
    wait_for(lambda: _answers(replica, conversation), timeout=30, what="the replica to serve again")
    assert [t for _, t in stored_texts(replica, conversation)] == ["before", "echo: before", "after", "echo: after"]


def test_telegram_enabled_on_every_replica_polls_from_the_leader_only(
    start_cluster: StartCluster, upstream: ScriptedUpstream
) -> None:
    with FakeTelegram() as tg:
        # The same config everywhere, Telegram included: one bot allows one poller, so only the leader polls.
        replicas = start_cluster(3, extra=(f'[channels.telegram]\nenabled = true\ntoken = "{tg.token}"\n'
                                           f'api_base = "{tg.api_base}"\nallow_from = ["42"]\npoll_timeout = 1\n'))
        tg.user_message("hello from the phone")
        tg.wait_until(lambda: tg.texts_to(42) == ["echo: hello from the phone"], timeout=30, what="the answer")
        tg.user_message("and again")
        # (An answer streams into its message by edits: wait for the whole of it.)
        tg.wait_until(lambda: tg.texts_to(42) == ["echo: hello from the phone", "echo: and again"], timeout=30,
                      what="the second answer")
        assert len(tg.calls_of("getMe")) == 1  # one poller started, on one replica
        assert sum("leads the cluster" in r.output for r in replicas) == 1
