"""Plain gateway settings, handed down from the config so the gateway never imports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 18790
    api_keys: tuple[str, ...] = ()
    allow_unauthenticated: bool = False  # serve a non-loopback address without keys
    cors_origins: tuple[str, ...] = ()
    request_timeout: float = 300.0
    max_body_bytes: int = 20 * 1024 * 1024
    keepalive_interval: float = 15.0
    model_ids: tuple[str, ...] = ("mofaclaw",)
    auth_failure_limit: int = 10  # failed attempts per address per window before 429
    auth_failure_window: float = 60.0
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides loopback ones ("*": any)
    trusted_proxies: tuple[str, ...] = ()  # addresses/CIDRs whose X-Forwarded-For is believed
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 60.0
