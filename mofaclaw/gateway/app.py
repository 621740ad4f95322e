"""The FastAPI application: routes, middleware and error handlers of the OpenAI-compatible API."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from mofaclaw import __version__
from mofaclaw.bus.reply import ReplyChannel
from mofaclaw.gateway.backend import AgentBackend
from mofaclaw.gateway.completions import CompletionService
from mofaclaw.gateway.errors import APIError, install_error_handlers
from mofaclaw.gateway.middleware import AuthMiddleware, BodyLimitMiddleware, BodyTooLarge
from mofaclaw.gateway.responses import ROUTES as RESPONSE_ROUTES
from mofaclaw.gateway.responses import responses_router
from mofaclaw.gateway.settings import GatewaySettings

ENDPOINTS = ["GET /health", "GET /v1/models", "GET /v1/models/{id}", "POST /v1/chat/completions", *RESPONSE_ROUTES]


def create_app(settings: GatewaySettings, api: ReplyChannel, backend: AgentBackend | None = None) -> FastAPI:
    app = FastAPI(title="mofaclaw", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    completions = CompletionService(settings, api, backend)
    created = int(time.time())

    def model_card(model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "mofaclaw"}

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(exc.body, status_code=413, headers={"Connection": "close"})

    @app.get("/")
    async def root() -> dict[str, Any]:
        return {"name": "mofaclaw", "version": __version__, "endpoints": ENDPOINTS}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(m) for m in settings.model_ids]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id not in settings.model_ids:
            raise APIError(404, f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
        return model_card(model_id)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await completions.handle(request)

    if backend is not None:
        app.include_router(responses_router(settings, api, backend))

    # Added last = outermost: CORS answers preflights before auth; the body cap applies to all.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, keys=settings.api_keys, failure_limit=settings.auth_failure_limit,
                       window=settings.auth_failure_window)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],  # Authorization, Content-Type, X-Conversation-Id, the SDKs' x-stainless-*
            expose_headers=["X-Conversation-Id", "X-Request-Id"],
            max_age=600,
        )
    return app
