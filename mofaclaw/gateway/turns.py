"""How an HTTP request waits for its turn: the answer, the client going away, or the time running out;
and how a failed turn is told to the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from mofaclaw.bus.reply import Answer, Reply, Update
from mofaclaw.errors import TurnErrorCode, TurnFailed
from mofaclaw.gateway.errors import APIError, error_body

# A failed turn as HTTP: status and OpenAI error code.
_TURN_ERRORS: dict[TurnErrorCode, tuple[int, str]] = {
    TurnErrorCode.PROVIDER_ERROR: (502, "upstream_error"),
    TurnErrorCode.PROVIDER_TIMEOUT: (504, "upstream_timeout"),
    TurnErrorCode.SHUTTING_DOWN: (503, "shutting_down"),
    TurnErrorCode.BACKEND_UNAVAILABLE: (503, "backend_unavailable"),
    TurnErrorCode.AGENT_ERROR: (500, "agent_error"),
    TurnErrorCode.INTERNAL_ERROR: (500, "internal_error"),
    TurnErrorCode.INVALID_REQUEST: (400, "invalid_value"),
}


class ClientGone(Exception):
    """The client closed the connection before the turn ended."""


def turn_error(exc: TurnFailed) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OpenAI-shaped body of a failed turn."""
    status, code = _TURN_ERRORS[exc.code]
    return status, error_body(str(exc), "invalid_request_error" if status < 500 else "server_error", None, code)


def timeout_error(seconds: float) -> APIError:
    return APIError(504, f"The agent did not finish within {seconds:g}s (gateway.request_timeout); "
                    "the turn was cancelled.", type="server_error", code="timeout")


async def answer_or_gone(reply: Reply, request: Request, timeout: float) -> Answer:
    """The turn's Answer. Raises TurnFailed when the turn failed, ClientGone when the client went away
    first, and timeout_error() when `timeout` seconds pass; in the last two cases the caller cancels the
    turn. The reply is closed either way."""
    answer = asyncio.ensure_future(reply.final())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({answer, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        reply.close()
    if answer in done:
        return answer.result()
    answer.cancel()
    if gone in done:
        raise ClientGone
    raise timeout_error(timeout)


async def paced(reply: Reply, keepalive: float, timeout: float) -> AsyncIterator[Update | Answer | None]:
    """A streamed turn's events as they come, ending with its Answer; None after each `keepalive` seconds
    of silence (the stream writes a comment then, so proxies do not close it while tools run). Raises
    TurnFailed as the turn fails, and TimeoutError once `timeout` seconds have passed (the caller cancels
    the turn). Use it under contextlib.aclosing, so a client going away closes it at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            async with asyncio.timeout(max(min(keepalive, deadline - loop.time()), 0)):
                event = await reply.next()
        except TimeoutError:
            if loop.time() >= deadline:
                raise
            yield None
            continue
        yield event
        if isinstance(event, Answer):
            return


async def _disconnected(request: Request) -> None:
    # After the body is read, the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
