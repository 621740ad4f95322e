"""ASGI middleware in front of every route: bearer-key auth with a failure limit, and the body-size cap."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mofaclaw.gateway.errors import error_body
from mofaclaw.gateway.limiter import FailureLimiter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class AuthMiddleware:
    """Every route but /health and CORS preflight needs `Authorization: Bearer <key>` when keys are set.
    Keys are compared in constant time. The key is checked first: a valid key always passes, and only
    an address that keeps failing is told to wait (429)."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], limiter: FailureLimiter) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or self._exempt(scope) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        # The peer address, or the forwarded one when it came through a gateway.trusted_proxies proxy.
        client = (scope.get("client") or ("?", 0))[0]
        now = time.monotonic()
        retry = self.limiter.retry_after(client, now)
        if retry is not None:
            await send_json(send, 429, error_body(
                "Too many failed authentication attempts; try again later.", "rate_limit_error", None,
                "rate_limit_exceeded"), {"Retry-After": str(retry)})
            return
        self.limiter.record(client, now)
        await send_json(send, 401, error_body(
            "Invalid or missing API key: send 'Authorization: Bearer <key>' with a key from gateway.api_keys.",
            "invalid_request_error", None, "invalid_api_key"), {"WWW-Authenticate": "Bearer"})

    @staticmethod
    def _exempt(scope: Scope) -> bool:
        if scope["path"] in OPEN_PATHS:
            return True
        headers = dict(scope["headers"])
        return scope["method"] == "OPTIONS" and b"access-control-request-method" in headers

    def _authorized(self, scope: Scope) -> bool:
        value = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = value.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        # Compare with every key, without stopping early, so timing says nothing about which matched.
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(token.strip(), key)
        return matched


class BodyLimitMiddleware:
    """Refuse a body over the limit with 413, from its Content-Length or as soon as the bytes read
    pass it: the body is never read whole first."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        error = BodyTooLarge(self.max_bytes)
        await send_json(send, 413, error.body, {"Connection": "close"})


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes (gateway.max_body_bytes).")
        self.body = error_body(str(self), "invalid_request_error", None, "request_too_large")
