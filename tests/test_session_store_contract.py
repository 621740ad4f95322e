"""One contract, two stores: the SQLite default and PostgreSQL keep conversations, paused turns and responses alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mofaclaw.session.base import SessionStore
from mofaclaw.session.postgres import PostgresSessionStore
from mofaclaw.session.responses import StoredResponse
from mofaclaw.session.sqlite import SQLiteSessionStore
from mofaclaw.types import ChatMessage, ToolCall

StoreFactory = Callable[[], SessionStore]


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def answer(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


CALL = ToolCall("call_1", "read_file", '{"path": "notes.md"}')
TOOL_TURN = [user("read my notes"), ChatMessage("assistant", None, (CALL,)),
             ChatMessage("tool", "buy milk", tool_call_id="call_1", name="read_file"), answer("Buy milk.")]


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores on one database (two of them are two replicas, or two processes); all closed after."""
    if request.param == "sqlite":
        def make() -> SessionStore:
            return SQLiteSessionStore(tmp_path / "sessions.db")
    else:
        dsn = request.getfixturevalue("postgres_dsn")

        def make() -> SessionStore:
            return PostgresSessionStore(dsn, pool_size=4)
    opened: list[SessionStore] = []

    def open_one() -> SessionStore:
        opened.append(make())
        return opened[-1]

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> SessionStore:
    return open_store()


async def test_a_turn_comes_back_whole_and_the_window_opens_at_a_user_message(store: SessionStore) -> None:
    await store.append_turn("api:a", [user("hello"), answer("Hi!")])
    await store.append_turn("api:a", TOOL_TURN)
    assert await store.history("api:a", 10) == [user("hello"), answer("Hi!"), *TOOL_TURN]
    # The last 3 messages start inside the tool turn: the window skips to the next user message (none).
    assert await store.history("api:a", 3) == []
    assert await store.history("api:a", 4) == TOOL_TURN
    stored = await store.messages("api:a")
    assert [s.message for s in stored] == [user("hello"), answer("Hi!"), *TOOL_TURN]
    assert [s.id for s in stored] == sorted(s.id for s in stored)
    assert await store.history("api:nobody", 10) == [] and await store.messages("api:nobody") == []


async def test_a_turn_that_cannot_be_stored_leaves_nothing_behind(store: SessionStore) -> None:
    await store.append_turn("api:a", [user("first"), answer("one")])
    broken = ChatMessage(None, "no role", ())  # type: ignore[arg-type]  # refused by the NOT NULL column
    with pytest.raises(Exception):  # noqa: B017  # each database names its own constraint error
        await store.append_turn("api:a", [user("second"), broken])
    with pytest.raises(Exception):  # noqa: B017
        await store.append_turn("api:b", [user("elsewhere"), broken])
    assert await store.history("api:a", 10) == [user("first"), answer("one")]
    assert [s.key for s in await store.list_sessions()] == ["api:a"]


async def test_sessions_are_listed_newest_first_and_deleted(store: SessionStore) -> None:
    await store.append_turn("api:old", [user("a"), answer("b")])
    await store.append_turn("api:new", [user("c"), answer("d")])
    await store.append_turn("api:new", [user("e"), answer("f")])
    listed = await store.list_sessions()
    assert [(s.key, s.message_count) for s in listed] == [("api:new", 4), ("api:old", 2)]
    assert listed[0].updated_at >= listed[1].updated_at
    assert await store.delete("api:old") is True
    assert await store.delete("api:old") is False
    assert [s.key for s in await store.list_sessions()] == ["api:new"]
    assert await store.history("api:old", 10) == []


async def test_archive_moves_the_conversation_aside(store: SessionStore) -> None:
    await store.append_turn("telegram:1", [user("remember this"), answer("ok")])
    archived = await store.archive("telegram:1")
    assert archived is not None and archived.startswith("telegram:1@")
    assert await store.history("telegram:1", 10) == []
    assert await store.history(archived, 10) == [user("remember this"), answer("ok")]
    assert await store.archive("telegram:nobody") is None
    await store.append_turn("telegram:1", [user("fresh start"), answer("hi")])
    assert {s.key for s in await store.list_sessions()} == {"telegram:1", archived}


async def test_consolidation_marks_only_move_forward(store: SessionStore) -> None:
    for i in range(4):
        await store.append_turn("cli:direct", [user(f"q{i}"), answer(f"a{i}")])
    pending = await store.unconsolidated("cli:direct", keep=2)
    assert [s.message.content for s in pending] == ["q0", "a0", "q1", "a1", "q2", "a2"]
    await store.mark_consolidated("cli:direct", pending[3].id)
    assert [s.message.content for s in await store.unconsolidated("cli:direct", keep=2)] == ["q2", "a2"]
    await store.mark_consolidated("cli:direct", pending[0].id)  # an older mark does not undo the newer
    assert [s.message.content for s in await store.unconsolidated("cli:direct", keep=0)] == ["q2", "a2", "q3", "a3"]
    assert await store.unconsolidated("cli:nobody", keep=0) == []


async def test_conversations_have_titles_and_metadata(store: SessionStore) -> None:
    await store.append_turn("cli:direct", [user("plan   my\nweek " + "very " * 30), answer("Sure.")])
    [old] = await store.conversations()
    assert old.title == ("plan my week " + "very " * 30)[:79] + "…"  # whitespace collapsed, 80 at most
    assert old.message_count == 2 and old.metadata == {}
    renamed = await store.update("cli:direct", title="  Weekly plan ")
    assert renamed is not None and renamed.title == "Weekly plan"
    reverted = await store.update("cli:direct", title="")
    assert reverted is not None and reverted.title == old.title
    assert await store.update("cli:nobody", title="x") is None
    assert await store.create("cli:direct", {}) is None  # taken
    new = await store.create("api:conv_1", {"topic": "t", "b": "1"})
    assert new is not None and new.title == "New chat" and new.metadata == {"topic": "t", "b": "1"}
    assert new.message_count == 0
    changed = await store.update("api:conv_1", metadata={"topic": "u"})
    assert changed is not None and changed.metadata == {"topic": "u"} and changed.title == "New chat"
    assert [c.key for c in await store.conversations()] == ["api:conv_1", "cli:direct"]
    assert await store.conversation("api:conv_1") == changed
    assert await store.conversation("api:nobody") is None


async def test_a_paused_turn_is_taken_once_and_a_newer_one_replaces_it(store: SessionStore) -> None:
    calls = (ToolCall("call_w", "get_weather", '{"city": "Paris"}'),)
    so_far = [user("weather?"), ChatMessage("assistant", None, calls)]
    paused = await store.pause_turn("api:c", calls, so_far, ttl=60)
    assert paused.pending_ids == {"call_w"}
    found = await store.paused_turn("api:c", ["call_w"])
    assert found == paused
    assert await store.paused_turn("api:c", []) == paused  # a conversation's turn is found by its key
    taken = await store.take_paused_turn("api:c", ["call_w"])
    assert taken == paused
    assert await store.take_paused_turn("api:c", ["call_w"]) is None
    await store.restore_paused_turn(paused)  # its resumption failed: it waits again
    assert await store.paused_turn("api:c", ["call_w"]) == paused
    newer = await store.pause_turn("api:c", calls, [*so_far, answer("again")], ttl=60)
    await store.restore_paused_turn(paused)  # too late: the newer one stays
    assert await store.paused_turn("api:c", ["call_w"]) == newer
    assert await store.history("api:c", 10) == []  # nothing of a paused turn is in the conversation


async def test_stateless_paused_turns_are_found_by_call_ids_and_expire(store: SessionStore) -> None:
    first = await store.pause_turn(None, (ToolCall("c1", "f", "{}"), ToolCall("c2", "g", "{}")), [user("x")], 60)
    await store.pause_turn(None, (ToolCall("c3", "f", "{}"),), [user("y")], 60)
    assert await store.paused_turn(None, ["c2"]) == first
    assert await store.paused_turn(None, ["nope"]) is None
    assert await store.paused_turn(None, []) is None
    assert await store.paused_turn("api:c", ["c1"]) is None  # stateless turns are not a conversation's
    expired = await store.pause_turn(None, (ToolCall("c9", "f", "{}"),), [user("z")], ttl=-1)
    assert await store.paused_turn(None, ["c9"]) is None and await store.take_paused_turn(None, ["c9"]) is None
    assert expired.pending_ids == {"c9"}


async def test_two_resumptions_of_one_turn_cannot_both_have_it(open_store: StoreFactory) -> None:
    replicas = [open_store(), open_store()]
    calls = (ToolCall("call_x", "f", "{}"),)
    for key in ("api:c", None):
        await replicas[0].pause_turn(key, calls, [user("go")], 60)
        taken = await asyncio.gather(*(r.take_paused_turn(key, ["call_x"]) for r in replicas * 4))
        assert sum(t is not None for t in taken) == 1, key


async def test_stored_responses_form_chains(store: SessionStore) -> None:
    body = {"id": "resp_1", "object": "response", "output": [], "metadata": {"z": "1", "a": "2"}}
    first = StoredResponse("resp_1", None, 1.0, body, [{"type": "message", "content": "hi"}],
                           (user("My name is Ann."), answer("Hello Ann.")))
    second = StoredResponse("resp_2", "resp_1", 2.0, {"id": "resp_2"}, [], (user("Name?"), answer("Ann.")))
    third = StoredResponse("resp_3", "resp_2", 3.0, {"id": "resp_3"}, [], tuple(TOOL_TURN))
    for response in (first, second, third):
        await store.save_response(response)
    got = await store.response("resp_1")
    assert got == first and list(got.body["metadata"]) == ["z", "a"]  # served back as it was stored
    assert await store.response_chain("resp_3") == [*first.messages, *second.messages, *TOOL_TURN]
    assert await store.response_chain("resp_1") == list(first.messages)
    assert await store.response_chain("resp_nope") is None and await store.response("resp_nope") is None
    assert await store.delete_response("resp_1") is True and await store.delete_response("resp_1") is False
    assert await store.response_chain("resp_3") == [*second.messages, *TOOL_TURN]  # the walk ends at the gap
    await store.save_response(StoredResponse("resp_1", "resp_3", 4.0, {}, [], (user("loop"),)))  # a cycle
    assert await store.response_chain("resp_3") == [user("loop"), *second.messages, *TOOL_TURN]


async def test_turns_written_by_two_stores_at_once_are_all_kept_whole(open_store: StoreFactory) -> None:
    replicas = [open_store(), open_store()]
    await asyncio.gather(*(replicas[i % 2].append_turn("api:shared", [user(f"q{i}"), answer(f"a{i}")])
                           for i in range(20)))
    for reader in replicas:  # every replica sees every committed turn, each in one piece
        messages = [m.content for m in await reader.history("api:shared", 100)]
        assert sorted(messages) == sorted([f"q{i}" for i in range(20)] + [f"a{i}" for i in range(20)])
        assert all(a == "a" + q[1:] for q, a in zip(messages[::2], messages[1::2], strict=True))


async def test_history_paused_turn_and_creation_time_come_back_together(open_store: StoreFactory) -> None:
    store = open_store()
    assert await store.append_turn("api:c", [user("hello"), answer("hi")])
    recent = await store.recent("api:c", 10)
    assert recent.history == [user("hello"), answer("hi")] and recent.paused is None
    assert recent.created_at is not None
    call = ToolCall("call_1", "lookup", "{}")
    paused = await store.pause_turn("api:c", [call], [user("look it up"), ChatMessage("assistant", None, (call,))],
                                    ttl=60)
    again = await store.recent("api:c", 10)
    assert again.history == [user("hello"), answer("hi")] and again.paused == paused
    assert again.created_at == recent.created_at
    none = await store.recent("api:other", 10)
    assert (none.history, none.paused, none.created_at) == ([], None, None)


async def test_a_conversation_deleted_during_a_turn_stays_deleted(open_store: StoreFactory) -> None:
    """A turn that found the conversation (and one that found none) commits only into what it found:
    the delete of a person who clicked "delete" while the agent answered is never undone by that answer."""
    store, other = open_store(), open_store()  # the turn on one replica/process, the delete on another
    await store.append_turn("api:d", [user("hello"), answer("hi")])
    found = await store.recent("api:d", 10)
    assert await other.delete("api:d")
    assert not await store.append_turn("api:d", [user("more"), answer("ok")], created_at=found.created_at)
    assert await other.conversation("api:d") is None and await other.messages("api:d") == []
    # deleted and begun again under the same id: the old turn does not land in the new conversation
    await other.append_turn("api:d", [user("fresh")])
    assert not await store.append_turn("api:d", [user("late"), answer("x")], created_at=found.created_at)
    assert [m.message.content for m in await other.messages("api:d")] == ["fresh"]
    # a turn that found nothing creates the conversation, as ever
    fresh = await store.recent("api:new", 10)
    assert await store.append_turn("api:new", [user("q"), answer("a")], created_at=fresh.created_at)
    assert len(await other.messages("api:new")) == 2


async def test_deleting_a_conversation_drops_the_turn_it_had_waiting(store: SessionStore) -> None:
    """Else the id stays blocked: a new message to it would be refused as waiting for tool results."""
    call = ToolCall("call_9", "lookup", "{}")
    await store.append_turn("api:p", [user("hello"), answer("hi")])
    await store.pause_turn("api:p", [call], [user("look it up"), ChatMessage("assistant", None, (call,))], ttl=60)
    await store.pause_turn("api:first", [call], [user("only a paused turn")], ttl=60)  # no committed turn yet
    assert await store.delete("api:p") and await store.delete("api:first")
    for key in ("api:p", "api:first"):
        assert (await store.recent(key, 10)).paused is None and await store.paused_turn(key, ()) is None
    assert not await store.delete("api:first")  # nothing left to delete
