"""The FastAPI application: routes, middleware and error handlers of the OpenAI-compatible API."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from mofaclaw import __version__
from mofaclaw.bus.reply import ReplyChannel
from mofaclaw.gateway import web
from mofaclaw.gateway.backend import AgentBackend
from mofaclaw.gateway.completions import CompletionService
from mofaclaw.gateway.errors import APIError, install_error_handlers
from mofaclaw.gateway.guards import FrontDoorGuard, JsonBodyGuard, accepted_hosts
from mofaclaw.gateway.limiter import FailureLimiter
from mofaclaw.gateway.middleware import AuthMiddleware, BodyLimitMiddleware, BodyTooLarge
from mofaclaw.gateway.openapi import (
    COMPLETION_ERRORS,
    EVENT_STREAM,
    REQUEST_BODY,
    ChatCompletion,
    Health,
    ModelCard,
    ModelList,
    ServiceInfo,
    error,
    install_openapi,
)
from mofaclaw.gateway.responses import ROUTES as RESPONSE_ROUTES
from mofaclaw.gateway.responses import responses_router
from mofaclaw.gateway.settings import GatewaySettings

ENDPOINTS = ["GET /health", "GET /v1/models", "GET /v1/models/{id}", "POST /v1/chat/completions",
             *RESPONSE_ROUTES, "GET /openapi.json"]


# The core routes, at module level: what they need (settings, the completion service, the start time)
# is on app.state, set by create_app.
core = APIRouter()


@core.get("/", summary="Service name, version and endpoints", responses={200: {"model": ServiceInfo}})
async def root() -> dict[str, Any]:
    return {"name": "mofaclaw", "version": __version__, "endpoints": ENDPOINTS}


@core.get("/health", summary="Liveness; never needs a key", responses={200: {"model": Health}})
async def health() -> dict[str, str]:
    return {"status": "ok"}


@core.get("/v1/models", summary="List models", responses={200: {"model": ModelList}})
async def list_models(request: Request) -> dict[str, Any]:
    state = request.app.state
    return {"object": "list", "data": [_model_card(m, state.created) for m in state.settings.model_ids]}


@core.get("/v1/models/{model_id:path}", summary="Retrieve a model",
          responses={200: {"model": ModelCard}, 404: error("Unknown model.")})
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    state = request.app.state
    if model_id not in state.settings.model_ids:
        raise APIError(404, f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
    return _model_card(model_id, state.created)


@core.post("/v1/chat/completions", summary="Create a chat completion (one agent turn)",
           openapi_extra=REQUEST_BODY,
           responses={200: {"model": ChatCompletion, "content": EVENT_STREAM}, **COMPLETION_ERRORS})
async def chat_completions(request: Request) -> Response:
    completions: CompletionService = request.app.state.completions
    return await completions.handle(request)


def _model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "mofaclaw"}


async def _too_large(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLarge)
    return JSONResponse(exc.body, status_code=413, headers={"Connection": "close"})


def create_app(settings: GatewaySettings, api: ReplyChannel, backend: AgentBackend | None = None) -> FastAPI:
    """The API; with `backend` (the agent's store and tools) also the Responses API, the conversations
    API and the web chat page."""
    app = FastAPI(title="mofaclaw", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.completions = CompletionService(settings, api, backend)
    app.state.created = int(time.time())
    install_error_handlers(app)
    install_openapi(app, settings)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.include_router(core)
    if backend is not None:
        app.include_router(responses_router(settings, api, backend))

    # Added last = outermost. The guard refuses foreign Hosts and Origins before anything runs; CORS
    # answers preflights before auth; auth before the body is typed, capped or read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(JsonBodyGuard)
    app.add_middleware(AuthMiddleware, keys=settings.api_keys,
                       limiter=FailureLimiter(settings.auth_failure_limit, settings.auth_failure_window))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],  # Authorization, Content-Type, X-Conversation-Id, the SDKs' x-stainless-*
            expose_headers=["X-Conversation-Id", "X-Request-Id"],
            max_age=600,
        )
    if backend is not None:  # the web chat page and its routes: the page loads without a key, its /v1 calls need one
        web.install(app, settings, backend.store)
    app.add_middleware(FrontDoorGuard, hosts=accepted_hosts(settings.host, settings.allowed_hosts),
                       cors_origins=settings.cors_origins)
    return app
