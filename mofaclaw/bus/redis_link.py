"""The connection to Redis: a client that fails fast, its URL without the password, one clear error for an outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mofaclaw.errors import BackendUnavailable

log = logging.getLogger(__name__)

# A dead server answers at once (connection refused); a hung one within this many seconds, not never.
SOCKET_TIMEOUT = 5.0
# Blocking reads wait at most this long per call, well inside SOCKET_TIMEOUT.
BLOCK_MS = 1000


def open_client(url: str) -> aioredis.Redis:
    """A client whose calls fail within seconds when Redis is gone. One immediate retry: a pooled
    connection that a Redis restart broke is replaced once instead of failing the call."""
    return aioredis.Redis.from_url(
        url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 1), health_check_interval=0,
    )


def safe_url(url: str) -> str:
    """`url` without its password (and without query parameters, which may carry one)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_cancelled() -> None:
    """Raise the CancelledError a loop's task was sent but never saw. On Python 3.11, asyncio.wait_for
    (which redis-py uses to write to its socket) drops a cancel that arrives as the write completes;
    a loop that goes on from there would never stop. Every loop over Redis calls this each round."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Link:
    """Translates a lost connection into BackendUnavailable, one line naming the server, never the password."""

    def __init__(self, url: str) -> None:
        self.where = safe_url(url)
        self._password = urlsplit(url).password or ""

    @contextmanager
    def reaching(self) -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: BaseException) -> BackendUnavailable:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0].strip() or type(exc).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        return BackendUnavailable(f"Redis at {self.where} cannot be reached ({reason.rstrip('.')}); try again shortly.")


class Outage:
    """Back-off for a background loop that lost Redis: one warning when the outage starts, one line when
    it ends, and a growing pause between attempts in between."""

    def __init__(self, what: str, first: float = 0.1, cap: float = 2.0) -> None:
        self._what = what
        self._first = first
        self._cap = cap
        self._delay = 0.0

    async def failed(self, exc: Exception) -> None:
        if not self._delay:
            log.warning("%s: %s Retrying.", self._what, exc)
        self._delay = min(self._cap, self._delay * 2 or self._first)
        await asyncio.sleep(self._delay)

    def ok(self) -> None:
        if self._delay:
            log.info("%s: Redis is reachable again.", self._what)
            self._delay = 0.0
