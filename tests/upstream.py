"""A scripted OpenAI-compatible upstream on loopback, for the tests and the benchmarks.

POST /v1/chat/completions plays the next step of a FIFO script or, when it is empty, the default reply
"echo: <text of the last user message>". Streams send text word by word and tool-call arguments in
fragments. Usage is deterministic: prompt_tokens = whitespace-separated words in the text of all request
messages (string contents and "text" parts); completion_tokens = words of the reply content plus
tool-call argument fragments; total_tokens = their sum.

In-process: ``with ScriptedUpstream() as up: ...`` serves from its own thread and event loop.
Standalone: ``python tests/upstream.py --port N [--token-delay SECONDS]`` prints its base URL first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import uvicorn

Json = dict[str, Any]
Receive = Callable[[], Awaitable[Json]]
Send = Callable[[Json], Awaitable[None]]
Predicate = Callable[[], bool]
_WORD = re.compile(r"\s*\S+\s*")
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error"}


@dataclass(frozen=True, slots=True)
class Reply:
    content: str
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class ToolCalls:
    calls: Sequence[tuple[str, Mapping[str, Any] | str]]  # (name, arguments as a dict or a raw string)
    content: str = ""  # text said before the calls


@dataclass(frozen=True, slots=True)
class Fail:
    status: int
    message: str = "scripted failure"
    retry_after: float | str | None = None  # seconds (or an HTTP date), sent as Retry-After
    retry_after_ms: int | None = None  # sent as retry-after-ms


@dataclass(frozen=True, slots=True)
class Hang:
    """Hold the request (a stream: after its role chunk and `after_chunks` more) until released or gone."""

    after_chunks: int = 0
    then: Reply | ToolCalls | None = None  # played on release; None: the default echo


Step = Reply | ToolCalls | Fail | Hang
ScriptItem = Step | Callable[[Json], Step]


class ScriptedUpstream:
    """The server and its thread-safe control API: the script, the records, waits on both."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token_delay: float = 0.0,
                 max_recorded: int | None = None) -> None:
        self.host, self.token_delay = host, token_delay
        self._sock = socket.create_server((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._script: deque[ScriptItem] = deque()
        self._received: deque[tuple[Json, dict[str, str]]] = deque(maxlen=max_recorded)
        self._waiters: list[tuple[Predicate, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.request_count = 0  # chat-completion requests received
        self.disconnects = 0  # clients that left while their request hung or streamed with a delay
        self._epoch = 0
        self._completion_ids, self._call_ids = count(1), count(1)
        self._released = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        config = uvicorn.Config(self.app, interface="asgi3", lifespan="off", log_level="warning",
                                access_log=False, proxy_headers=False, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def enqueue(self, *items: ScriptItem) -> None:
        """Append steps, or callables request_json -> step, to the script."""
        with self._lock:
            self._script.extend(items)

    def reply(self, content: str, finish_reason: str = "stop") -> None:
        self.enqueue(Reply(content, finish_reason))

    def tool_calls(self, calls: Sequence[tuple[str, Mapping[str, Any] | str]], content: str = "") -> None:
        self.enqueue(ToolCalls(calls, content))

    def fail(self, status: int, message: str = "scripted failure", *, retry_after: float | str | None = None,
             retry_after_ms: int | None = None) -> None:
        self.enqueue(Fail(status, message, retry_after, retry_after_ms))

    def hang(self, after_chunks: int = 0, then: Reply | ToolCalls | None = None) -> None:
        self.enqueue(Hang(after_chunks, then))

    def release(self) -> None:
        """Let every request hanging now go on with its `then` step."""
        with self._lock:
            released, self._released = self._released, asyncio.Event()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(released.set)

    def reset(self) -> None:
        """Fresh script, records and ids; hanging requests are released, their disconnects not counted."""
        self.release()
        with self._lock:
            self._script.clear()
            self._received.clear()
            self.request_count = self.disconnects = 0
            self._epoch += 1
            self._completion_ids, self._call_ids = count(1), count(1)
        self.token_delay = 0.0

    @property
    def requests(self) -> list[Json]:
        """Bodies of the chat-completion requests received, oldest first."""
        with self._lock:
            return [body for body, _ in self._received]

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """Their headers (lower-case names), parallel to `requests`."""
        with self._lock:
            return [headers for _, headers in self._received]

    async def wait_until(self, predicate: Predicate, timeout: float = 5.0, what: str = "event") -> None:
        """Wait in any event loop until predicate() holds (it is called under the lock, on each change)."""
        loop = asyncio.get_running_loop()
        waiter = (predicate, loop, loop.create_future())
        with self._lock:
            if predicate():
                return
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[2]
        except TimeoutError:
            raise TimeoutError(f"upstream: no {what} within {timeout}s") from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def wait_until_sync(self, predicate: Predicate, timeout: float = 5.0, what: str = "event") -> None:
        """The same for synchronous tests: blocks the calling thread."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"upstream: no {what} within {timeout}s")

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self.request_count >= n, timeout, f"{n} requests")

    async def wait_for_disconnects(self, n: int, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self.disconnects >= n, timeout, f"{n} disconnects")

    def _changed(self) -> None:  # the caller holds the lock
        self._cond.notify_all()
        for waiter in [w for w in self._waiters if w[0]()]:
            self._waiters.remove(waiter)
            waiter[1].call_soon_threadsafe(_resolve, waiter[2])

    def start(self) -> ScriptedUpstream:
        ready = threading.Event()
        self._thread = threading.Thread(target=self.run, args=(ready,), name="upstream", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        self.release()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self, ready: threading.Event | None = None) -> None:
        """Serve until stopped, in the calling thread (which handles signals if it is the main one)."""
        with asyncio.Runner(loop_factory=self._server.config.get_loop_factory()) as runner:
            self._loop = runner.get_loop()
            if ready is not None:
                ready.set()
            runner.run(self._server.serve(sockets=[self._sock]))

    async def app(self, scope: Json, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        if route == ("GET", "/v1/models"):
            data = [{"id": "scripted", "object": "model", "created": 0, "owned_by": "upstream"}]
            return await _send_json(send, 200, {"object": "list", "data": data})
        if route != ("POST", "/v1/chat/completions"):
            return await _send_error(send, Fail(404, f"no route {scope['method']} {scope['path']}"))
        raw, more = b"", True
        while more:
            message = await receive()
            raw, more = raw + message.get("body", b""), message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        await self._chat(json.loads(raw), headers, receive, send)

    async def _chat(self, body: Json, headers: dict[str, str], receive: Receive, send: Send) -> None:
        with self._lock:
            self._received.append((body, headers))
            self.request_count += 1
            item = self._script.popleft() if self._script else None
            cid, epoch = f"chatcmpl-{next(self._completion_ids)}", self._epoch
            exchange = _Exchange(receive, send, self._released)
            self._changed()
        step = _echo(body) if item is None else item(body) if callable(item) else item
        if isinstance(step, Fail):
            return await _send_error(exchange.send, step)
        hang = step if isinstance(step, Hang) else None
        plan = _Plan.of((hang.then or _echo(body)) if hang else step, self._call_ids)
        try:
            if body.get("stream"):
                await self._stream(exchange, cid, body, plan, hang)
            else:
                if hang is not None:
                    await exchange.pause(None)
                choice = {"index": 0, "message": plan.message, "finish_reason": plan.finish, "logprobs": None}
                await _send_json(exchange.send, 200, {
                    "id": cid, "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "scripted"), "choices": [choice],
                    "usage": _usage(body, plan.tokens)})
        except _Disconnected:
            with self._lock:
                if epoch == self._epoch:
                    self.disconnects += 1
                    self._changed()
        finally:
            if exchange.gone is not None:
                exchange.gone.cancel()

    async def _stream(
        self, exchange: _Exchange, cid: str, body: Json, plan: _Plan, hang: Hang | None
    ) -> None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model", "scripted")} | ({"usage": None} if include_usage else {})

        def event(fields: Json) -> bytes:
            return b"data: " + json.dumps(base | fields).encode() + b"\n\n"

        def chunk(delta: Json, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return event({"choices": [choice]})

        events = [chunk({"role": "assistant", "content": ""}), *map(chunk, plan.deltas)]
        events.append(chunk({}, plan.finish))
        if include_usage:
            events.append(event({"choices": [], "usage": _usage(body, plan.tokens)}))
        events.append(b"data: [DONE]\n\n")
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await exchange.send({"type": "http.response.start", "status": 200, "headers": headers})
        hang_at, delay = (1 + hang.after_chunks if hang else -1), self.token_delay
        if hang_at < 0 and delay <= 0:  # the fast path the benchmarks take
            return await exchange.send({"type": "http.response.body", "body": b"".join(events)})
        for position, data in enumerate(events):
            if position == hang_at:
                await exchange.pause(None)
            elif 0 < position <= len(plan.deltas) and delay > 0:
                await exchange.pause(delay)
            await exchange.send({"type": "http.response.body", "body": data, "more_body": True})
        await exchange.send({"type": "http.response.body", "body": b""})


@dataclass(slots=True)
class _Plan:
    """A reply worked out once: the whole message, its stream deltas, finish reason and token count."""

    message: Json
    deltas: list[Json]
    finish: str
    tokens: int

    @classmethod
    def of(cls, answer: Reply | ToolCalls, call_ids: Iterator[int]) -> _Plan:
        deltas: list[Json] = [{"content": w} for w in _WORD.findall(answer.content)]
        if isinstance(answer, Reply):
            message = {"role": "assistant", "content": answer.content, "refusal": None}
            return cls(message, deltas, answer.finish_reason, len(deltas))
        calls = []
        for index, (name, args) in enumerate(answer.calls):
            arguments = args if isinstance(args, str) else json.dumps(args)
            call_id, function = f"call_{next(call_ids)}", {"name": name, "arguments": arguments}
            calls.append({"id": call_id, "type": "function", "function": function})
            opening = {"index": index, "id": call_id, "type": "function",
                       "function": {"name": name, "arguments": ""}}
            deltas.append({"tool_calls": [opening]})
            deltas += [{"tool_calls": [{"index": index, "function": {"arguments": part}}]}
                       for part in _fragments(arguments)]
        message = {"role": "assistant", "content": answer.content or None, "refusal": None, "tool_calls": calls}
        return cls(message, deltas, "tool_calls", len(deltas) - len(calls))


class _Disconnected(Exception):
    pass


class _Exchange:
    """One response's channel to its client; its waits race the client's disconnect."""

    def __init__(self, receive: Receive, send: Send, released: asyncio.Event) -> None:
        self.receive, self.send, self.released = receive, send, released
        self.gone: asyncio.Future[Json] | None = None

    async def pause(self, delay: float | None) -> None:
        """Sleep `delay` seconds, or (None) until released; raise _Disconnected if the client leaves."""
        if self.gone is None:
            self.gone = asyncio.ensure_future(self.receive())
        waits: set[asyncio.Future[Any]] = {self.gone}
        if delay is None:
            waits.add(asyncio.ensure_future(self.released.wait()))
        done, pending = await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        for task in pending - {self.gone}:
            task.cancel()
        if self.gone in done:
            raise _Disconnected


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _echo(body: Json) -> Reply:
    users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
    return Reply("echo: " + (_text(users[-1].get("content")) if users else ""))


def _usage(body: Json, completion_tokens: int) -> Json:
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    prompt = sum(len(_text(m.get("content")).split()) for m in messages)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens}


def _fragments(arguments: str) -> list[str]:
    size = math.ceil(len(arguments) / 3) or 1
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _send_json(send: Send, status: int, payload: Json, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(payload).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": data})


async def _send_error(send: Send, fail: Fail) -> None:
    kind = _ERROR_TYPES.get(fail.status, "server_error" if fail.status >= 500 else "invalid_request_error")
    retry = ((b"retry-after", fail.retry_after), (b"retry-after-ms", fail.retry_after_ms))
    headers = [(name, str(value).encode()) for name, value in retry if value is not None]
    error = {"message": fail.message, "type": kind, "param": None, "code": None}
    await _send_json(send, fail.status, {"error": error}, headers)


def main() -> None:
    parser = argparse.ArgumentParser(description="A scripted OpenAI-compatible upstream (default: echo).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: the OS picks one")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed words")
    args = parser.parse_args()
    server = ScriptedUpstream(args.host, args.port, args.token_delay, max_recorded=1000)
    print(f"listening on {server.base_url}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
