"""A minimal HTTP/1.1 keep-alive client on raw asyncio streams: cheap enough not to be what we measure.

httpx-based clients (the openai SDK included) top out near 150 requests/s on this 2-core machine, so a
load generator built on them would measure itself. This one writes a prebuilt request, parses only
the status line, Content-Length or chunked framing, and, for streams, the SSE events: it timestamps
the first event carrying non-empty content (time to first token) and joins the content it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any


class HTTPError(Exception):
    """The connection broke or the server spoke something we do not parse."""


@dataclass(slots=True)
class Result:
    """One request: status, timings (seconds, monotonic) and what the answer said."""

    status: int = 0
    started: float = 0.0
    first_token: float | None = None  # streams: first event with non-empty content
    finished: float = 0.0
    content: str = ""  # the answer's text (whole message, or the joined deltas)
    done: bool = False  # streams: "data: [DONE]" seen
    usage: dict[str, int] | None = None  # the answer's usage, when it sent one
    error: str = ""

    @property
    def latency(self) -> float:
        return self.finished - self.started

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def ok(self) -> bool:
        return not self.error and self.status == 200


@dataclass(slots=True)
class _SSE:
    """Incremental SSE parsing: events are split on blank lines, their JSON parsed one by one."""

    buffer: bytes = b""
    parts: list[str] = field(default_factory=list)
    first: float | None = None
    done: bool = False
    usage: dict[str, int] | None = None

    def feed(self, data: bytes, now: float) -> None:
        self.buffer += data
        *events, self.buffer = self.buffer.split(b"\n\n")
        for raw in events:
            for line in raw.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue  # comments (keep-alives) and other fields
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                    continue
                chunk = json.loads(payload)
                self.usage = chunk.get("usage") or self.usage
                text = _delta_text(chunk)
                if text:
                    self.parts.append(text)
                    if self.first is None:
                        self.first = now


def _delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""


def _message(body: bytes) -> tuple[str, dict[str, int] | None]:
    data = json.loads(body)
    choices = data.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or "", data.get("usage")


class Connection:
    """One keep-alive connection, used by one worker at a time; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    def request_bytes(self, method: str, path: str, body: bytes = b"") -> bytes:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Content-Type: application/json\r\nAccept: */*\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        return head.encode() + body

    async def send(self, raw: bytes, stream: bool = False, timeout: float = 60.0) -> Result:
        """Send a prebuilt request (see request_bytes) and read its whole response."""
        result = Result(started=time.perf_counter())
        try:
            async with asyncio.timeout(timeout):
                reused = self._writer is not None
                try:
                    await self._exchange(raw, stream, result)
                except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
                    stale = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
                    if not (reused and stale and result.status == 0):
                        raise
                    # The server closed the idle keep-alive connection as we reused it (uvicorn: after 5 s by
                    # default); like any HTTP client, send again once on a new connection.
                    await self.close()
                    result.started = time.perf_counter()
                    await self._exchange(raw, stream, result)
        except TimeoutError:
            result.error = "timeout"
        except (HTTPError, ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:200]
        if result.error:
            await self.close()  # the connection's state is unknown: start over next time
        result.finished = result.finished or time.perf_counter()
        return result

    async def _exchange(self, raw: bytes, stream: bool, result: Result) -> None:
        if self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        self._writer.write(raw)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HTTPError(f"bad status line {lines[0]!r}")
        result.status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        sse = _SSE() if stream and result.status == 200 else None
        body = await self._body(headers, sse)
        result.finished = time.perf_counter()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        if result.status != 200:
            result.error = f"HTTP {result.status}: {body[:120]!r}"
        elif sse is not None:
            result.first_token, result.content, result.done = sse.first, "".join(sse.parts), sse.done
            result.usage = sse.usage
        else:
            result.content, result.usage = _message(body)

    async def _body(self, headers: dict[str, str], sse: _SSE | None) -> bytes:
        assert self._reader is not None
        reader = self._reader
        if "chunked" in headers.get("transfer-encoding", "").lower():
            pieces = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers are sent by the servers we measure
                    break
                data = (await reader.readexactly(size + 2))[:-2]
                if sse is not None:
                    sse.feed(data, time.perf_counter())
                else:
                    pieces.append(data)
            return b"".join(pieces)
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
            if sse is not None:
                sse.feed(data + b"\n\n", time.perf_counter())
            return data
        pieces = []  # no framing: the body lasts until the server closes
        while data := await reader.read(65536):
            if sse is not None:
                sse.feed(data, time.perf_counter())
            else:
                pieces.append(data)
        await self.close()
        return b"".join(pieces)


async def get(host: str, port: int, path: str, timeout: float = 2.0) -> int:
    """One GET on a fresh connection: its status, or 0 when nothing answered."""
    connection = Connection(host, port)
    try:
        result = await connection.send(connection.request_bytes("GET", path), timeout=timeout)
    finally:
        await connection.close()
    return result.status
