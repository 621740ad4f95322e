"""A scripted fake of the Telegram Bot API on loopback, for the Telegram channel's tests.

It serves what the channel uses — getMe, getUpdates (a real long poll, which can be told to stall),
sendMessage, editMessageText, sendChatAction, getFile and the file download, sendPhoto,
sendDocument — with Telegram's rules where they matter: the token in the path, messages of at most
4,096 characters after parsing, HTML that Telegram's parser would refuse answered with 400 "can't
parse entities", "message is not modified", and scripted 429s with `retry_after` or 5xx failures.

getUpdates returns every kept update with an id >= offset (a missing offset: all of them), so a
client that forgets its offset gets old messages again: only a client that persists it avoids that.

``with FakeTelegram(token) as tg: ...`` serves from its own thread; the control API is thread-safe.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import html
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import count
from typing import Any
from urllib.parse import parse_qs

import uvicorn

Json = dict[str, Any]
Receive = Callable[[], Awaitable[Json]]
Send = Callable[[Json], Awaitable[None]]

BOT = {"id": 999, "is_bot": True, "first_name": "Claw", "username": "claw_test_bot"}
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "blockquote",
                "tg-spoiler", "span", "tg-emoji"}


class ParseError(Exception):
    pass


class _TelegramHTML(HTMLParser):
    """Telegram's HTML mode, as strict as the real one where it matters: known tags only, properly
    nested and closed, every '<', '>' and '&' outside a tag escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise ParseError(f'Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise ParseError(f'Can\'t find end tag corresponding to start tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if any(c in data for c in "<>&"):
            raise ParseError("unescaped character in text")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in ("lt", "gt", "amp", "quot"):
            raise ParseError(f'Unsupported HTML entity "&{name};"')
        self.text.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.text.append(html.unescape(f"&#{name};"))

    def unknown_decl(self, data: str) -> None:
        raise ParseError("unsupported declaration")

    def handle_comment(self, data: str) -> None:
        raise ParseError("unsupported comment")


def visible_text(text: str, parse_mode: str | None) -> str:
    """What the user sees; raises ParseError where Telegram answers 400 can't parse entities."""
    if parse_mode is None:
        return text
    if parse_mode.upper() != "HTML":
        raise ParseError(f"unsupported parse mode {parse_mode}")
    parser = _TelegramHTML()
    parser.feed(text)
    parser.close()
    if parser.rawdata:
        raise ParseError("unexpected end of text")
    if parser.stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"')
    return "".join(parser.text)


@dataclass
class Sent:
    """A message the bot sent, as the user sees it now."""

    message_id: int
    chat_id: str
    text: str  # visible text
    raw: str  # as sent (HTML source when parse_mode was HTML)
    parse_mode: str | None
    kind: str = "text"  # text | photo | document
    filename: str = ""
    data: bytes = b""
    edits: int = 0


@dataclass
class Call:
    method: str
    params: Json
    at: float = field(default_factory=time.monotonic)
    status: int = 200


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-token-abcdef") -> None:
        self.token = token
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._lock = threading.RLock()  # predicates of wait_until read the records under it
        self._cond = threading.Condition(self._lock)
        self.updates: list[Json] = []
        self.sent: list[Sent] = []
        self.calls: list[Call] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, data)
        self._update_ids, self._message_ids, self._incoming_ids = count(100), count(1), count(5000)
        self._faults: list[tuple[str, int, Json]] = []  # (method, status, extra body)
        self._stalls = 0
        self.stalled_polls = 0  # polls held by a scripted stall
        self._loop: asyncio.AbstractEventLoop | None = None
        self._news: asyncio.Event | None = None
        self._release: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        config = uvicorn.Config(self.app, interface="asgi3", lifespan="off", log_level="warning",
                                access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeTelegram:
        started = threading.Event()

        def serve() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                self._news, self._release = asyncio.Event(), asyncio.Event()
                started.set()
                await self._server.serve(sockets=[self._sock])

            asyncio.run(main())

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        started.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_stalls()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    # -- scripting -------------------------------------------------------------------------------

    def user_message(self, text: str = "", *, chat_id: int = 42, user_id: int = 42, username: str = "alice",
                     chat_type: str = "private", reply_to: Json | None = None, photo: bytes | None = None,
                     caption: str | None = None, entities: list[Json] | None = None,
                     document: tuple[str, bytes] | None = None, voice: bytes | None = None) -> int:
        """Queue an incoming message; returns its update id."""
        message: Json = {
            "message_id": next(self._incoming_ids), "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type, **({"title": "group"} if chat_type != "private" else {})},
            "from": {"id": user_id, "is_bot": False, "first_name": username.title(), "username": username},
        }
        if text:
            message["text"] = text
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if photo is not None:
            file_id = f"photo-{len(self.files)}"
            with self._lock:
                self.files[file_id] = (f"photos/{file_id}.jpg", photo)
            message["photo"] = [  # Telegram lists every size; the channel takes the largest
                {"file_id": f"{file_id}-small", "file_unique_id": "small", "width": 90, "height": 90, "file_size": 10},
                {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 800, "height": 600,
                 "file_size": len(photo)},
            ]
        if document is not None:
            name, data = document
            message["document"] = {"file_id": self._file(data, name), "file_unique_id": f"d{len(self.files)}",
                                   "file_name": name, "file_size": len(data)}
        if voice is not None:
            message["voice"] = {"file_id": self._file(voice, "voice.oga"), "file_unique_id": f"v{len(self.files)}",
                                "duration": 2, "file_size": len(voice)}
        if caption and (photo is not None or document is not None or voice is not None):
            message["caption"] = caption
        return self._add_update({"message": message})

    def _file(self, data: bytes, name: str) -> str:
        with self._lock:
            file_id = f"file-{len(self.files)}"
            self.files[file_id] = (f"files/{file_id}/{name}", data)
        return file_id

    def _add_update(self, update: Json) -> int:
        with self._cond:
            update_id = next(self._update_ids)
            self.updates.append({"update_id": update_id, **update})
            self._cond.notify_all()
        self._wake()
        return update_id

    def fault(self, method: str, status: int, times: int = 1, retry_after: int | None = None,
              description: str | None = None) -> None:
        """Answer the next `times` calls of `method` with an error (429: with parameters.retry_after)."""
        extra: Json = {"description": description or {429: f"Too Many Requests: retry after {retry_after}",
                                                        502: "Bad Gateway"}.get(status, "Bad Request: scripted")}
        if retry_after is not None:
            extra["parameters"] = {"retry_after": retry_after}
        with self._lock:
            self._faults += [(method, status, extra)] * times

    def stall_polls(self, times: int = 1) -> None:
        """Hold the next `times` getUpdates calls without an answer until the client gives up."""
        with self._lock:
            self._stalls += times
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.clear)

    def release_stalls(self) -> None:
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    # -- records ---------------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def sent_to(self, chat_id: int | str) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.chat_id == str(chat_id)]

    def texts_to(self, chat_id: int | str) -> list[str]:
        return [s.text for s in self.sent_to(chat_id)]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Block until predicate() holds (checked on every request the fake answers)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; calls: "
                                         f"{[c.method for c in self.calls][-30:]}; sent: {self.sent[-5:]}")
                self._cond.wait(min(left, 0.5))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        await asyncio.to_thread(self.wait_until, predicate, timeout, what)

    # -- the server ------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._loop is not None and self._news is not None:
            news = self._news
            self._loop.call_soon_threadsafe(news.set)

    async def app(self, scope: Json, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        path: str = scope["path"]
        prefix, file_prefix = f"/bot{self.token}/", f"/file/bot{self.token}/"
        if path.startswith(file_prefix):
            await self._download(path[len(file_prefix):], send)
            return
        if not path.startswith(prefix):
            await _respond(send, 401 if path.startswith("/bot") else 404,
                           {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        method = path[len(prefix):]
        params = _params(dict(scope["headers"]).get(b"content-type", b"").decode(), body)
        status, answer = await self._answer(method, params, receive)
        with self._cond:
            self.calls.append(Call(method, params, status=status))
            self._cond.notify_all()
        if status >= 0:
            await _respond(send, status, answer)

    async def _answer(self, method: str, params: Json, receive: Receive) -> tuple[int, Json]:
        with self._lock:
            fault = next((f for f in self._faults if f[0] == method), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None:
            _, status, extra = fault
            return status, {"ok": False, "error_code": status, **extra}
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            result = await handler(params, receive)
        except ParseError as exc:
            return 400, {"ok": False, "error_code": 400,
                         "description": f"Bad Request: can't parse entities: {exc}"}
        except _BadRequest as exc:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}
        if result is _GONE:
            return -1, {}
        return 200, {"ok": True, "result": result}

    async def _api_getMe(self, params: Json, receive: Receive) -> Json:
        return BOT

    async def _api_getUpdates(self, params: Json, receive: Receive) -> Any:
        with self._lock:
            stall = self._stalls > 0
            if stall:
                self._stalls -= 1
                self.stalled_polls += 1
        if stall:
            await _until_gone_or(receive, self._release)
            return _GONE
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        assert self._loop is not None and self._news is not None
        deadline = self._loop.time() + timeout
        while True:
            with self._lock:
                found = [u for u in self.updates if u["update_id"] >= offset]
            if found or self._loop.time() >= deadline:
                return found[: int(params.get("limit") or 100)]
            self._news.clear()
            try:
                async with asyncio.timeout(deadline - self._loop.time()):
                    await self._news.wait()
            except TimeoutError:
                pass

    async def _api_sendMessage(self, params: Json, receive: Receive) -> Json:
        text, mode = str(params.get("text", "")), params.get("parse_mode")
        seen = visible_text(text, mode)
        _check_length(seen)
        with self._lock:
            sent = Sent(next(self._message_ids), str(params["chat_id"]), seen, text, mode)
            self.sent.append(sent)
        return _message_json(sent)

    async def _api_editMessageText(self, params: Json, receive: Receive) -> Json:
        text, mode = str(params.get("text", "")), params.get("parse_mode")
        seen = visible_text(text, mode)
        _check_length(seen)
        with self._lock:
            sent = next((s for s in self.sent if s.message_id == int(params["message_id"])
                         and s.chat_id == str(params["chat_id"])), None)
            if sent is None:
                raise _BadRequest("message to edit not found")
            if (sent.raw, sent.parse_mode) == (text, mode):
                raise _BadRequest("message is not modified: specified new message content and reply markup "
                                  "are exactly the same as a current content and reply markup of the message")
            sent.text, sent.raw, sent.parse_mode = seen, text, mode
            sent.edits += 1
        return _message_json(sent)

    async def _api_sendChatAction(self, params: Json, receive: Receive) -> bool:
        return True

    async def _api_getFile(self, params: Json, receive: Receive) -> Json:
        with self._lock:
            found = self.files.get(str(params.get("file_id")))
        if found is None:
            raise _BadRequest("invalid file_id")
        path, data = found
        return {"file_id": params["file_id"], "file_unique_id": "u" + str(params["file_id"]),
                "file_size": len(data), "file_path": path}

    async def _api_sendPhoto(self, params: Json, receive: Receive) -> Json:
        return self._upload(params, "photo")

    async def _api_sendDocument(self, params: Json, receive: Receive) -> Json:
        return self._upload(params, "document")

    def _upload(self, params: Json, kind: str) -> Json:
        filename, data = params.get(kind, ("", b""))
        with self._lock:
            sent = Sent(next(self._message_ids), str(params["chat_id"]), "", "", None, kind, filename, data)
            self.sent.append(sent)
        return _message_json(sent)

    async def _download(self, path: str, send: Send) -> None:
        with self._lock:
            data = next((d for p, d in self.files.values() if p == path), None)
        if data is None:
            await _respond(send, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


class _BadRequest(Exception):
    pass


_GONE = object()


def _check_length(text: str) -> None:
    if not text.strip():
        raise _BadRequest("message text is empty")
    if len(text) > 4096:
        raise _BadRequest("message is too long")


def _message_json(sent: Sent) -> Json:
    message: Json = {"message_id": sent.message_id, "date": int(time.time()),
                     "chat": {"id": int(sent.chat_id), "type": "private"}, "from": BOT}
    if sent.kind == "text":
        message["text"] = sent.text
    elif sent.kind == "photo":
        message["photo"] = [{"file_id": "sent", "file_unique_id": "sent", "width": 1, "height": 1}]
    else:
        message["document"] = {"file_id": "sent", "file_unique_id": "sent", "file_name": sent.filename}
    return message


async def _until_gone_or(receive: Receive, release: asyncio.Event | None) -> None:
    """Wait until the client disconnects (or the test releases every stall)."""
    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    waits = [asyncio.ensure_future(gone())]
    if release is not None:
        waits.append(asyncio.ensure_future(release.wait()))
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _params(content_type: str, body: bytes) -> Json:
    """The call's parameters: form fields (values JSON-decoded where they are JSON), files as (name, bytes)."""
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        params: Json = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            params[name] = (filename, data) if filename else _decode(data.decode())
        return params
    if content_type.startswith("application/json"):
        return json.loads(body or b"{}")
    return {k: _decode(v[0]) for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}


def _decode(value: str) -> Any:
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, list | dict) else value


async def _respond(send: Send, status: int, body: Json) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
