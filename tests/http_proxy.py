"""A recording forward proxy for plain HTTP on loopback, to prove what honours HTTP_PROXY and NO_PROXY.

It takes absolute-form requests (`POST http://host:port/path HTTP/1.1`), records the method and URL,
and forwards the request in origin form with `Connection: close`, so every request opens its own proxy
connection and none passes unrecorded. CONNECT (HTTPS tunnels) is refused with 405: nothing here needs it.

``with RecordingProxy() as proxy: ...`` serves from its own thread and event loop; `proxy.url` is what
goes into HTTP_PROXY.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit

_HOP_BY_HOP = (b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization")


class RecordingProxy:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[str]:
        """Every request the proxy was asked to forward, as "METHOD URL"."""
        with self._lock:
            return list(self._seen)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        async def shut() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        request_line, *header_lines = head[:-4].split(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        with self._lock:
            self._seen.append(f"{method} {target}")
        url = urlsplit(target)
        if method == "CONNECT" or url.scheme != "http" or not url.hostname:
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [h for h in header_lines if h.split(b":", 1)[0].strip().lower() not in _HOP_BY_HOP]
        up_writer.write(b"\r\n".join([f"{method} {path} {version}".encode("latin-1"), *kept,
                                      b"Connection: close", b"", b""]))
        async with asyncio.TaskGroup() as group:
            group.create_task(_pipe(reader, up_writer))
            group.create_task(_pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until the reading side ends, then close the writing side (the other direction then ends too)."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
