"""Failed authentication attempts per client, in a sliding window, in a table that stays bounded."""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque


class FailureLimiter:
    """After `limit` failures within `window` seconds a client is refused until the oldest one expires.
    Only failures are recorded: a client holding a valid key is never limited by this table."""

    def __init__(self, limit: int, window: float, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        # Ordered by last failure, oldest first: the cap evicts the client that failed longest ago.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._next_sweep = 0.0

    def retry_after(self, client: str, now: float) -> int | None:
        """Seconds until `client` may try again, or None when it may try now."""
        failures = self._failures.get(client_key(client))
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - now))

    def record(self, client: str, now: float) -> None:
        key = client_key(client)
        failures = self._failures.pop(key, None) or deque(maxlen=self.limit)
        failures.append(now)
        self._failures[key] = failures
        if now >= self._next_sweep:
            self._sweep(now)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)

    def _sweep(self, now: float) -> None:
        """Drop clients whose last failure has expired; at most once per window, so O(1) amortized."""
        self._next_sweep = now + self.window
        expired = now - self.window
        for key in [k for k, failures in self._failures.items() if failures[-1] <= expired]:
            del self._failures[key]


def client_key(address: str) -> str:
    """IPv6 clients are counted per /64: one host usually holds a whole /64 and could rotate through it."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
