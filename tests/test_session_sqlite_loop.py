"""The SQLite store's loop connection: a held lock sends a commit to the worker, never an error; the WAL stays small."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path

import openai
from gateway_harness import GatewayProcess
from test_cli_config import mofaclaw
from upstream import ScriptedUpstream

from mofaclaw.session.sqlite import CHECKPOINT_EVERY, SQLiteSessionStore
from mofaclaw.types import ChatMessage

StartGateway = Callable[..., GatewayProcess]

# Another process (the CLI, say) inside a write transaction: it writes its own turn, says "locked",
# and commits when told to on stdin.
HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
now = time.time()
db.execute("INSERT INTO sessions(key, created_at, updated_at) VALUES ('cli:direct', ?, ?) "
           "ON CONFLICT(key) DO UPDATE SET updated_at = excluded.updated_at", (now, now))
db.execute("INSERT INTO messages(session_key, role, content, created_at) "
           "VALUES ('cli:direct', 'user', 'from the cli', ?)", (now,))
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
print("committed", flush=True)
"""


@asynccontextmanager
async def write_lock_held_elsewhere(db_path: Path) -> AsyncIterator[asyncio.Event]:
    """Holds the database's write lock from another process until the yielded event is set."""
    holder = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLDER, str(db_path),
                                                  stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"locked\n"
        release = asyncio.Event()
        releasing = asyncio.create_task(release.wait())
        yield release
        await releasing
        holder.stdin.write(b"commit\n")
        await holder.stdin.drain()
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"committed\n"
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


def turn(n: int) -> list[ChatMessage]:
    return [ChatMessage("user", f"question {n}"), ChatMessage("assistant", f"answer {n}")]


def rows(db_path: Path, key: str) -> list[str]:
    with closing(sqlite3.connect(db_path)) as db:
        return [c for (c,) in db.execute("SELECT content FROM messages WHERE session_key = ? ORDER BY id", (key,))]


async def test_a_turn_waits_out_a_lock_held_by_another_process_and_lands_once(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    store = SQLiteSessionStore(path)
    try:
        await store.append_turn("api:a", turn(1))  # migrates the database; the loop connection opens next
        await store.append_turn("api:a", turn(2))
        async with write_lock_held_elsewhere(path) as release:
            committing = asyncio.create_task(store.append_turn("api:a", turn(3)))
            done, _ = await asyncio.wait({committing}, timeout=0.3)
            assert not done, "the turn must wait for the lock (on the worker), not fail or skip it"
            # Readers do not wait for a writer in WAL mode: the next turn's history answers meanwhile.
            assert await store.history("api:a", 10) == [*turn(1), *turn(2)]
            release.set()
        await asyncio.wait_for(committing, 10)
        await store.append_turn("api:a", turn(4))  # and the loop connection is still usable
        assert await store.history("api:a", 20) == [*turn(1), *turn(2), *turn(3), *turn(4)]
        assert rows(path, "cli:direct") == ["from the cli"]
    finally:
        await store.close()


async def test_a_lock_held_by_a_thread_of_this_process_is_waited_out_too(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    store = SQLiteSessionStore(path)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with closing(sqlite3.connect(path, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(20)
            db.execute("COMMIT")

    try:
        await store.connect()
        holder = threading.Thread(target=hold)
        holder.start()
        assert await asyncio.to_thread(locked.wait, 20)
        committing = asyncio.create_task(store.append_turn("api:t", turn(1)))
        done, _ = await asyncio.wait({committing}, timeout=0.3)
        assert not done
        release.set()
        await asyncio.wait_for(committing, 10)
        await asyncio.to_thread(holder.join, 20)
        assert await store.history("api:t", 10) == turn(1)
    finally:
        release.set()
        await store.close()


async def test_the_wal_is_checkpointed_while_turns_commit_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    wal = path.with_name(path.name + "-wal")
    store = SQLiteSessionStore(path)
    big = "word " * 400  # ~2 kB a message
    turns = 12 * CHECKPOINT_EVERY
    sizes: list[int] = []
    try:
        await store.connect()
        for n in range(turns):
            await store.append_turn(f"api:{n % 50}", [ChatMessage("user", big), ChatMessage("assistant", big)])
            sizes.append(wal.stat().st_size)
            if n % 50 == 49:
                # A server also visits the worker now and then (lists, archives); a loop that commits and
                # nothing else could starve the worker's thread of the GIL and the CPU on a busy machine.
                await store.list_sessions()
        assert len(await store.messages("api:7")) == 2 * turns // 50
    finally:
        await store.close()
    per_turn = (sizes[30] - sizes[10]) / 20  # what a turn adds before the first checkpoint
    assert per_turn > 4096
    assert max(sizes) < turns * per_turn / 4, f"the WAL grew to {max(sizes)} bytes over {turns} turns"
    assert not wal.exists() or wal.stat().st_size == 0  # closed: checkpointed away


async def test_a_gateway_turn_and_the_cli_writing_at_once_both_land(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    env = {"MOFACLAW_HOME": str(gw.home)}
    path = gw.home / "sessions.db"
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused")
    try:
        first = await client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": "one"}],
                                                     extra_body={"conversation_id": "both"})
        assert first.choices[0].message.content == "echo: one"
        # The CLI (another process) holds the write lock while a gateway turn wants to commit: the turn
        # waits for it instead of failing, and both writes land.
        async with write_lock_held_elsewhere(path) as release:
            second = asyncio.create_task(client.chat.completions.create(
                model="mofaclaw", messages=[{"role": "user", "content": "two"}],
                extra_body={"conversation_id": "both"}))
            await upstream.wait_for_requests(2)
            done, _ = await asyncio.wait({second}, timeout=0.3)
            assert not done
            release.set()
        assert (await asyncio.wait_for(second, 20)).choices[0].message.content == "echo: two"
        # Turns through the gateway while `mofaclaw agent` commits its own from another process.
        turns = [client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": f"n{i}"}],
                                                extra_body={"conversation_id": f"c{i % 4}"}) for i in range(12)]
        cli = asyncio.to_thread(mofaclaw, "agent", "-m", "hello from the terminal", env=env)
        *answers, typed = await asyncio.gather(*turns, cli)
        assert [a.choices[0].message.content for a in answers] == [f"echo: n{i}" for i in range(12)]
        assert typed.returncode == 0, typed.stderr
    finally:
        await client.close()
    assert rows(path, "api:both") == ["one", "echo: one", "two", "echo: two"]
    for c in range(4):  # each turn whole, in some order: they ran at once
        pairs = rows(path, f"api:c{c}")
        assert sorted(zip(pairs[::2], pairs[1::2], strict=True)) == sorted(
            (f"n{i}", f"echo: n{i}") for i in range(c, 12, 4))
    assert rows(path, "cli:direct") == ["from the cli", "hello from the terminal", "echo: hello from the terminal"]


def test_one_store_serves_successive_event_loops_and_another_thread(tmp_path: Path) -> None:
    # The CLI runs asyncio.run several times over one store; a store may also be used from another thread.
    store = SQLiteSessionStore(tmp_path / "sessions.db")
    asyncio.run(store.append_turn("cli:direct", turn(1)))
    asyncio.run(store.append_turn("cli:direct", turn(2)))
    failures: list[BaseException] = []

    def elsewhere() -> None:
        try:
            asyncio.run(store.append_turn("cli:direct", turn(3)))
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    other = threading.Thread(target=elsewhere)
    other.start()
    other.join(20)
    assert not other.is_alive() and failures == []
    assert asyncio.run(store.history("cli:direct", 10)) == [*turn(1), *turn(2), *turn(3)]
    asyncio.run(store.close())
    assert not (tmp_path / "sessions.db-wal").exists()  # both connections closed
