"""uvicorn's httptools protocol with the limits it lacks: header bytes, header count, the time to send
the headers and the time to send the body. Without them one connection sending an endless header grows
the server by its size, and a connection that never finishes its headers, or drips its body a byte at a
time, is held open for ever (slowloris)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from mofaclaw.gateway.errors import error_body


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    max_bytes: int = 32 * 1024  # request line + headers; nginx's default buffers hold 4 x 8 KiB
    max_count: int = 100
    timeout: float = 10.0  # seconds from a connection (or a request's first byte) to the end of its headers
    body_timeout: float = 60.0  # seconds from the end of the headers to the end of the body


class _Refused(Exception):
    """Raised inside a parser callback: uvicorn turns any callback error into send_400_response()."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HeaderLimits] = HeaderLimits()

    _header_bytes = 0
    _in_headers = False
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _refusal: tuple[int, str, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The first request's clock starts at the connection: an idle new connection is a slowloris too.
        self._in_headers = True
        self._header_timer = self.loop.call_later(self.limits.timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Counted after parsing: a chunk that completes the headers was bounded by the transport's read
        # size, and the sizes of complete headers are checked exactly in on_headers_complete.
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_bytes:
                self._refuse(431, f"The request headers are larger than {self.limits.max_bytes} bytes.",
                             "request_header_fields_too_large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.limits.timeout, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if len(self.headers) > self.limits.max_count:
            self._refusal = (431, f"The request has more than {self.limits.max_count} headers.",
                             "request_header_fields_too_large")
            raise _Refused
        if size > self.limits.max_bytes:
            self._refusal = (431, f"The request headers are larger than {self.limits.max_bytes} bytes.",
                             "request_header_fields_too_large")
            raise _Refused
        super().on_headers_complete()
        # The body's clock. A pipelined request waits, unread, behind the one before it: its time
        # waiting is ours, not the client's, so only a request that starts at once is timed.
        if not self.pipeline and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._disarm_body()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self._refuse(408, f"The request headers did not arrive within {self.limits.timeout:g} seconds.",
                         "request_timeout")

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        message = f"The request body did not arrive within {self.limits.body_timeout:g} seconds."
        if self.cycle is not None and not self.cycle.response_started:
            self._write_refusal(408, message, "request_timeout")
        self.transport.close()  # the app waiting for the body sees a disconnect and does nothing

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, message: str, code: str) -> None:
        self._disarm()
        if self.cycle is None or self.cycle.response_complete:
            # Only when no response is being written on this connection, or the two would interleave.
            self._write_refusal(status, message, code)
        self.transport.close()

    def _write_refusal(self, status: int, message: str, code: str) -> None:
        body = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
        self.transport.write(b"".join([
            STATUS_LINE[status], b"content-type: application/json\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n", body]))


def protocol_with(limits: HeaderLimits) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for uvicorn.Config(http=...) carrying these limits."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
