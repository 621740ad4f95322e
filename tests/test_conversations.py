"""The conversations API, the page's routes and headers, and opt-in progress events, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import openai
import pytest
from gateway_harness import GatewayProcess
from openai_schema import errors
from upstream import ScriptedUpstream

from mofaclaw.session.migrations import MIGRATIONS
from mofaclaw.session.sqlite import SQLiteSessionStore

StartGateway = Callable[..., GatewayProcess]


def _ask(client: openai.OpenAI, conversation: str, text: str) -> str:
    reply = client.chat.completions.create(model="mofaclaw", messages=[{"role": "user", "content": text}],
                                           extra_body={"conversation_id": conversation})
    return reply.choices[0].message.content or ""


def test_conversations_with_the_openai_sdk_and_schemas(start_gateway: StartGateway, upstream: ScriptedUpstream
                                                       ) -> None:
    gw = start_gateway()
    client = gw.client(api_key="unused")
    created = client.conversations.create(metadata={"topic": "demo"})
    assert created.id.startswith("conv_") and created.metadata == {"topic": "demo"}
    upstream.tool_calls([("list_dir", {"path": "."})])
    assert _ask(client, created.id, "What files do I have?") == "echo: What files do I have?"
    _ask(client, "cli:direct", "from the terminal")  # the terminal's own conversation, by its session key

    listed = httpx.get(gw.url + "/conversations").json()
    assert errors("ConversationResource", listed["data"][0]) == []
    assert {c["id"]: c["title"] for c in listed["data"]} == {
        created.id: "What files do I have?", "cli:direct": "from the terminal"}

    renamed = httpx.post(f"{gw.url}/conversations/{created.id}", json={"title": "Files"}).json()
    assert errors("ConversationResource", renamed) == [] and renamed["title"] == "Files"
    assert client.conversations.update(created.id, metadata={"topic": "files"}).metadata == {"topic": "files"}
    assert client.conversations.retrieve(created.id).model_extra["title"] == "Files"

    raw_items = httpx.get(f"{gw.url}/conversations/{created.id}/items", params={"order": "asc"}).json()
    assert errors("ConversationItemList", raw_items) == []
    items = list(client.conversations.items.list(created.id, order="asc"))
    assert [i.type for i in items] == ["message", "function_call", "function_call_output", "message"]
    assert items[1].name == "list_dir" and json.loads(items[1].arguments) == {"path": "."}
    assert items[3].content[0].text == "echo: What files do I have?"
    page = client.conversations.items.list(created.id, order="asc", limit=2)
    assert [i.id for i in page.data] == [i.id for i in items[:2]] and page.has_more

    deleted = client.conversations.delete(created.id)
    assert deleted.deleted and errors("DeletedConversationResource", deleted.model_dump()) == []
    with pytest.raises(openai.NotFoundError, match=f"No conversation with id '{created.id}'"):
        client.conversations.retrieve(created.id)
    # The terminal's conversation was not touched, and remembers its turn.
    assert [m["title"] for m in httpx.get(gw.url + "/conversations").json()["data"]] == ["from the terminal"]


def test_bad_conversation_requests_get_one_clear_line(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    missing = httpx.delete(gw.url + "/conversations/nope")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "No conversation with id 'nope'."
    with_items = httpx.post(gw.url + "/conversations", json={"items": [{"type": "message"}]})
    assert with_items.status_code == 400 and "not supported" in with_items.json()["error"]["message"]
    too_long = httpx.post(gw.url + "/conversations", json={"metadata": {"k": "v" * 600}})
    assert too_long.status_code == 400 and too_long.json()["error"]["param"]


def test_the_page_for_browsers_json_for_clients_and_strict_headers(start_gateway: StartGateway) -> None:
    gw = start_gateway('[gateway]\napi_keys = ["sk-page-key-0123456789"]\n')
    for accept in ("*/*", "application/json", ""):
        index = httpx.get(gw.base + "/", headers={"Accept": accept, "Authorization": "Bearer sk-page-key-0123456789"})
        assert index.json()["name"] == "mofaclaw"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for page in (httpx.get(gw.base + "/", headers={"Accept": browser}), httpx.get(gw.base + "/chat")):
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert '<meta name="mofaclaw-auth" content="required">' in page.text
        assert "sk-page-key-0123456789" not in page.text
    script = httpx.get(gw.base + "/chat/app.js")
    assert script.headers["content-type"].startswith("text/javascript") and "sessionStorage" in script.text
    # The page loads without a key; what it fetches does not.
    assert httpx.get(gw.url + "/conversations").status_code == 401
    assert httpx.post(gw.url + "/render", json={"texts": ["x"]}).status_code == 401


def test_render_is_sanitized_markdown(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    texts = ["# Title\n\n```python\nprint('<b>')\n```", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
             "[x](javascript:alert(1))", "![pixel](https://tracker.example/p.png)"]
    html = httpx.post(gw.url + "/render", json={"texts": texts}).json()["html"]
    assert html[0].startswith("<h1>Title</h1>") and "<pre><code>print('&lt;b&gt;')" in html[0]
    assert html[1] == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    assert "<img" not in html[2] and "<img" not in html[4]
    assert "href" not in html[3]


def test_progress_events_only_for_clients_that_ask(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    body = {"model": "mofaclaw", "stream": True, "messages": [{"role": "user", "content": "look"}],
            "stream_options": {"include_progress": True}}
    upstream.tool_calls([("list_dir", {"path": "notes"})])
    with httpx.stream("POST", gw.url + "/chat/completions", json=body) as response:
        raw = response.read().decode()
    progress = [block for block in raw.split("\n\n") if block.startswith("event: progress\n")]
    assert len(progress) == 1
    event = json.loads(progress[0].split("data: ", 1)[1])
    assert (event["tool"], event["summary"], event["text"]) == ("list_dir", "notes", "↳ list_dir notes")

    # The default stream is untouched: the official SDK parses every chunk, and no event is named.
    upstream.tool_calls([("list_dir", {"path": "notes"})])
    client = gw.client(api_key="unused")
    chunks = list(client.chat.completions.create(model="mofaclaw", messages=body["messages"], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: look"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    upstream.tool_calls([("list_dir", {"path": "notes"})])
    del body["stream_options"]
    with httpx.stream("POST", gw.url + "/chat/completions", json=body) as response:
        assert "event:" not in response.read().decode()


async def test_an_existing_database_gains_titles_and_renames(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    with closing(sqlite3.connect(path)) as db, db:  # a database from before titles existed
        MIGRATIONS[0](db)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO sessions(key, created_at, updated_at) VALUES ('cli:direct', 1, 2)")
        db.executemany("INSERT INTO messages(session_key, role, content, created_at) VALUES ('cli:direct', ?, ?, 1)",
                       [("user", "plan   my\nweek " + "very " * 30), ("assistant", "Sure.")])
    store = SQLiteSessionStore(path)
    try:
        [old] = await store.conversations()
        assert old.title == ("plan my week " + "very " * 30)[:79] + "…"  # whitespace collapsed, 80 at most
        assert old.message_count == 2 and old.metadata == {}
        renamed = await store.update("cli:direct", title="  Weekly plan ")
        assert renamed is not None and renamed.title == "Weekly plan"
        reverted = await store.update("cli:direct", title="")
        assert reverted is not None and reverted.title == old.title
        assert await store.update("cli:nobody", title="x") is None
        assert await store.create("cli:direct", {}) is None  # taken
        new = await store.create("api:conv_1", {"topic": "t"})
        assert new is not None and new.title == "New chat" and new.metadata == {"topic": "t"}
    finally:
        await store.close()


async def test_deleting_a_conversation_while_it_answers_keeps_it_deleted(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    """The page's delete while the agent still answers: the answer reaches the asker, and the
    conversation does not come back (with only its last turn) when the answer is done."""
    gw = start_gateway()
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused")
    async with httpx.AsyncClient(base_url=gw.url) as http:
        created = (await http.post("/conversations", json={})).json()["id"]
        first = await client.chat.completions.create(
            model="mofaclaw", messages=[{"role": "user", "content": "hello"}], extra_body={"conversation_id": created})
        assert first.choices[0].message.content == "echo: hello"
        upstream.hang()
        answering = asyncio.create_task(client.chat.completions.create(
            model="mofaclaw", messages=[{"role": "user", "content": "and then?"}],
            extra_body={"conversation_id": created}))
        await upstream.wait_for_requests(2)
        assert (await http.delete(f"/conversations/{created}")).json()["deleted"] is True
        upstream.release()
        late = await answering
        assert late.choices[0].message.content == "echo: and then?"
        assert (await http.get(f"/conversations/{created}")).status_code == 404
        assert created not in [c["id"] for c in (await http.get("/conversations")).json()["data"]]
        # the id can be used again, from nothing
        again = await client.chat.completions.create(
            model="mofaclaw", messages=[{"role": "user", "content": "anew"}], extra_body={"conversation_id": created})
        assert again.choices[0].message.content == "echo: anew"
        items = (await http.get(f"/conversations/{created}/items?order=asc")).json()["data"]
        assert [i["content"][0]["text"] for i in items] == ["anew", "echo: anew"]
    await client.close()
