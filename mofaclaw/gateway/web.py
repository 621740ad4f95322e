"""The web chat page: its files (package data, served as they are, no network), its strict headers, and
the API routes it uses (conversations, Markdown rendering), installed on the gateway with one call."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from mofaclaw.gateway import conversations
from mofaclaw.gateway.middleware import ASGIApp, Receive, Scope, Send
from mofaclaw.gateway.render import render
from mofaclaw.gateway.settings import GatewaySettings
from mofaclaw.session.base import SessionStore

# No inline script or style anywhere, nothing from another origin, never inside a frame.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
ASSETS = {
    "/chat/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/chat/style.css": ("style.css", "text/css; charset=utf-8"),
    "/chat/icon.svg": ("icon.svg", "image/svg+xml"),
}
AUTH_MARKER = "{{auth}}"


def install(app: FastAPI, settings: GatewaySettings, store: SessionStore) -> None:
    """Add the page and its API routes; call after the app's own middleware, so the page is served
    before auth (the key prompt must load) while every /v1 route it calls still needs the key."""
    app.include_router(conversations.router(store))
    app.include_router(render_router())
    app.add_middleware(PageMiddleware, auth_required=bool(settings.api_keys))


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[Annotated[str, Field(max_length=200_000)]] = Field(max_length=500)


class RenderResponse(BaseModel):
    html: list[str]


def render_router() -> APIRouter:
    routes = APIRouter(tags=["web"])

    @routes.post("/v1/render", response_model=RenderResponse,
                 summary="Markdown to sanitized HTML (no raw HTML, no scripts, http/https/mailto links only)")
    async def render_markdown(body: RenderRequest) -> RenderResponse:
        # Off the event loop: a long answer takes a while to render, and other requests must not wait.
        return RenderResponse(html=await asyncio.to_thread(lambda: [render(t) for t in body.texts]))

    return routes


def wants_page(accept: str) -> bool:
    """Browsers name text/html in Accept; API clients send JSON types or */*, and get the JSON index."""
    for part in accept.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        if media == "text/html":
            quality = next((p.partition("=")[2].strip() for p in params if p.startswith("q")), "1")
            try:
                return float(quality) > 0
            except ValueError:
                return True
    return False


class PageMiddleware:
    """Serves GET /chat, GET / to browsers, and the page's assets, with the security headers."""

    def __init__(self, app: ASGIApp, auth_required: bool) -> None:
        self.app = app
        files = resources.files("mofaclaw.gateway") / "static"
        page = (files / "index.html").read_text(encoding="utf-8")
        self.page = page.replace(AUTH_MARKER, "required" if auth_required else "none").encode()
        self.assets = {path: ((files / name).read_bytes(), media) for path, (name, media) in ASSETS.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._response(scope) if scope["type"] == "http" else None
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _response(self, scope: Scope) -> Response | None:
        if scope["method"] not in ("GET", "HEAD"):
            return None
        path = scope["path"]
        if path in ("/chat", "/chat/"):
            return Response(self.page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)
        if path == "/":
            accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
            if not wants_page(accept):
                return None
            return Response(self.page, media_type="text/html; charset=utf-8",
                            headers={**SECURITY_HEADERS, "Vary": "Accept"})
        if path in self.assets:
            body, media = self.assets[path]
            return Response(body, media_type=media, headers=SECURITY_HEADERS)
        return None
