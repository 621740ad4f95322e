"""Front-door checks no browser-borne attack gets past: the Host a request was sent to (DNS rebinding),
the page it came from (cross-site requests) and the type of its body (form posts need no preflight)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from mofaclaw.gateway.errors import error_body
from mofaclaw.gateway.middleware import ASGIApp, Receive, Scope, Send, send_json
from mofaclaw.gateway.server import is_loopback

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
DEFAULT_PORTS = {"http": 80, "https": 443}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def accepted_hosts(bind_host: str, allowed_hosts: Iterable[str]) -> frozenset[str] | None:
    """The host names a Host header may carry, or None for any. Bound to loopback, only loopback names
    (and allowed_hosts): a public name that resolves to 127.0.0.1 is how DNS rebinding gets in."""
    extra = {_host_name(h) or h.lower() for h in allowed_hosts}
    if "*" in extra:
        return None
    if is_loopback(bind_host):
        return LOOPBACK_NAMES | extra
    return frozenset(extra) or None


class FrontDoorGuard:
    """421 for a Host this gateway is not, 403 for an Origin that is neither this gateway nor a
    configured CORS origin. Outermost, so nothing else runs for such a request."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None, cors_origins: Iterable[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = {o.rstrip("/").lower() for o in cors_origins}
        self.any_origin = "*" in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = [v for k, v in scope["headers"] if k == b"host"]
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if self.hosts is not None and not self._host_ok(hosts):
            await send_json(send, 421, error_body(
                "This gateway does not answer for that Host; add the name to gateway.allowed_hosts if it is "
                "yours.", "invalid_request_error", None, "misdirected_request"))
            return
        if origin is not None and not self._origin_ok(origin.decode("latin-1"), hosts, scope["scheme"]):
            await send_json(send, 403, error_body(
                "Cross-origin requests from this page are not allowed; add its origin to gateway.cors_origins "
                "to allow them.", "invalid_request_error", None, "origin_not_allowed"))
            return
        await self.app(scope, receive, send)

    def _host_ok(self, hosts: list[bytes]) -> bool:
        if not hosts:
            return True  # no browser omits Host, so its absence is no rebinding (HTTP/1.0 tools do)
        assert self.hosts is not None
        return len(hosts) == 1 and _host_name(hosts[0].decode("latin-1")) in self.hosts

    def _origin_ok(self, origin: str, hosts: list[bytes], scheme: str) -> bool:
        if self.any_origin or origin.rstrip("/").lower() in self.origins:
            return True
        # Same origin: a page this gateway served itself (a future web chat) talks to it freely.
        return len(hosts) == 1 and _origin_key(origin) == _origin_key(f"{scheme}://{hosts[0].decode('latin-1')}")


class JsonBodyGuard:
    """/v1/* bodies must be application/json: a cross-site form or text/plain post is then refused,
    as browsers cannot send JSON to another origin without a CORS preflight."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in BODY_METHODS and scope["path"].startswith("/v1/"):
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            if content_type.partition(b";")[0].strip().lower() != b"application/json":
                shown = content_type.decode("latin-1")[:100] or "none"
                await send_json(send, 415, error_body(
                    f"Unsupported Content-Type '{shown}': send the body as application/json.",
                    "invalid_request_error", None, "unsupported_media_type"))
                return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str | None:
    """The lowercased name of a Host value ("[::1]:80" -> "[::1]"), None when it is malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]") + 1
        name, rest = host[:end], host[end:]
        if not end or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = host.partition(":")
    if not name or (port and not port.isdigit()):
        return None
    return name


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]
