"""The Responses API (/v1/responses): each request is a stateless turn whose history is its stored chain."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from mofaclaw.bus.events import InboundMessage
from mofaclaw.bus.reply import Answer, Reply, ReplyChannel
from mofaclaw.errors import TurnErrorCode, TurnFailed
from mofaclaw.gateway.backend import AgentBackend
from mofaclaw.gateway.client_tools import check_results_answer_calls, client_tools, function_spec
from mofaclaw.gateway.completions import STREAM_HEADERS  # failures told as on Chat Completions
from mofaclaw.gateway.errors import APIError
from mofaclaw.gateway.openapi import COMPLETION_ERRORS, RESPONSE_OBJECT, RESPONSE_REQUEST_BODY, error
from mofaclaw.gateway.response_events import ResponseEvents
from mofaclaw.gateway.response_items import ResponseObject, listed_input, outputs_of, read_input
from mofaclaw.gateway.response_schemas import CreateResponseRequest
from mofaclaw.gateway.settings import GatewaySettings
from mofaclaw.gateway.sse import KEEPALIVE
from mofaclaw.gateway.turns import ClientGone, answer_or_gone, paced, timeout_error, turn_error
from mofaclaw.session.responses import StoredResponse
from mofaclaw.types import ChatMessage, ClientTools, GenerationOptions, ToolChoice

log = logging.getLogger(__name__)

ROUTES = ["POST /v1/responses", "GET /v1/responses/{id}", "DELETE /v1/responses/{id}",
          "GET /v1/responses/{id}/input_items"]
# A turn that failed because of the request is the client's error; any other failure is the response's.
_CLIENT_ERRORS = {TurnErrorCode.INVALID_REQUEST: 400, TurnErrorCode.SHUTTING_DOWN: 503,
                  TurnErrorCode.BACKEND_UNAVAILABLE: 503}


def responses_router(settings: GatewaySettings, api: ReplyChannel, backend: AgentBackend) -> APIRouter:
    service = ResponseService(settings, api, backend)
    router = APIRouter(prefix="/v1/responses", tags=["responses"])
    unknown = {404: error("Unknown response id.")}
    router.add_api_route("", service.create, methods=["POST"], response_model=None,
                         summary="Create a model response (one agent turn)", openapi_extra=RESPONSE_REQUEST_BODY,
                         responses={200: RESPONSE_OBJECT, **COMPLETION_ERRORS,
                                    404: error("Unknown model or previous_response_id.")})
    router.add_api_route("/{response_id}", service.get, methods=["GET"], summary="Retrieve a stored response",
                         responses={200: RESPONSE_OBJECT, **unknown})
    router.add_api_route("/{response_id}", service.delete, methods=["DELETE"], summary="Delete a stored response",
                         responses=unknown)
    router.add_api_route("/{response_id}/input_items", service.input_items, methods=["GET"],
                         summary="List a stored response's input items", responses=unknown)
    return router


class ResponseService:
    def __init__(self, settings: GatewaySettings, api: ReplyChannel, backend: AgentBackend) -> None:
        self.settings = settings
        self.api = api
        self.backend = backend
        self.store = backend.store

    async def create(self, request: Request) -> Response:
        body = _parse(await request.body())
        if body.model not in self.settings.model_ids:
            raise APIError(404, f"The model '{body.model}' does not exist; use one of: "
                           f"{', '.join(self.settings.model_ids)}.", param="model", code="model_not_found")
        chain: list[ChatMessage] = []
        if body.previous_response_id is not None:
            found = await self.store.response_chain(body.previous_response_id)
            if found is None:
                raise _not_found(body.previous_response_id, "previous_response_id")
            chain = found
        turn = read_input(body, chain)
        check_results_answer_calls(turn.history, turn.tool_results, "input")
        if not turn.tool_results and not turn.content.strip():
            raise APIError(400, "The input has no user message and no function_call_output.", param="input")
        specs = [function_spec(tool, i, nested=False) for i, tool in enumerate(body.tools)]
        client = client_tools(specs, _chat_tool_choice(body.tool_choice), body.parallel_tool_calls, self.backend)
        response = ResponseObject(body, body.model)
        inbound = self._inbound(body, response, turn.instructions, turn.history, turn.tool_results, turn.content,
                                client, request)
        reply = await self.api.ask(inbound)
        log.info("response %s: stream=%s previous=%s", response.id, body.stream, body.previous_response_id or "-")
        record = _Record(self.store, body, response, len(chain))
        if body.stream:
            return StreamingResponse(self._stream(inbound, reply, response, record), media_type="text/event-stream",
                                     headers=STREAM_HEADERS)
        return await self._complete(inbound, reply, response, record, request)

    def _inbound(self, body: CreateResponseRequest, response: ResponseObject, instructions: str,
                 history: list[ChatMessage], results: tuple[ChatMessage, ...], content: str, client: ClientTools,
                 request: Request) -> InboundMessage:
        sender = request.client.host if request.client else "unknown"
        options = GenerationOptions(temperature=body.temperature, top_p=body.top_p, max_tokens=body.max_output_tokens)
        return InboundMessage("api", sender, f"response-{response.id}", content, request_id=response.id,
                              history=history, instructions=instructions, options=options,
                              live_updates=body.stream, client_tools=client, tool_results=results)

    async def _complete(self, inbound: InboundMessage, reply: Reply, response: ResponseObject, record: _Record,
                        request: Request) -> Response:
        try:
            final = await answer_or_gone(reply, request, self.settings.request_timeout)
        except TurnFailed as exc:
            status, error = turn_error(exc)
            await record.save(response.fail(str(exc)), ())
            return JSONResponse(error, status_code=status)
        except ClientGone:
            log.info("response %s: client disconnected; turn cancelled", response.id)
            self.api.cancel(inbound)
            return Response(status_code=499)
        except APIError:  # the time ran out
            self.api.cancel(inbound)
            raise
        body = response.finish(final, outputs_of(final))
        await record.save(body, final.messages)
        return JSONResponse(body)

    async def _stream(self, inbound: InboundMessage, reply: Reply, response: ResponseObject,
                      record: _Record) -> AsyncIterator[bytes]:
        events = ResponseEvents()
        finished = False
        try:
            yield events.event("response.created", response=response.snapshot())
            yield events.event("response.in_progress", response=response.snapshot())
            s = self.settings
            async with aclosing(paced(reply, s.keepalive_interval, s.request_timeout)) as updates:
                async for event in updates:
                    if event is None:
                        yield KEEPALIVE
                    elif isinstance(event, Answer):
                        finished = True
                        for data in events.end(event):
                            yield data
                        body = response.finish(event, events.output)
                        await record.save(body, event.messages)
                        kind = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
                        yield events.event(kind, response=body)
                    elif event.kind == "delta":
                        for data in events.delta(event.text):
                            yield data
        except TimeoutError:
            self.api.cancel(inbound)
            finished = True
            error = timeout_error(self.settings.request_timeout)
            yield events.event("response.failed", response=await record.failed(response, str(error)))
        except TurnFailed as exc:
            finished = True
            if exc.code in _CLIENT_ERRORS:
                yield events.event("error", code=exc.code.value, message=str(exc), param=None)
            else:
                yield events.event("response.failed", response=await record.failed(response, str(exc)))
        finally:
            reply.close()
            if not finished:
                log.info("response %s: client disconnected; turn cancelled", response.id)
                self.api.cancel(inbound)

    async def get(self, response_id: str) -> dict[str, Any]:
        stored = await self.store.response(response_id)
        if stored is None:
            raise _not_found(response_id)
        return stored.body

    async def delete(self, response_id: str) -> dict[str, Any]:
        if not await self.store.delete_response(response_id):
            raise _not_found(response_id)
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def input_items(self, response_id: str, limit: int = Query(20, ge=1, le=100),
                          order: Literal["asc", "desc"] = "desc", after: str | None = None) -> dict[str, Any]:
        stored = await self.store.response(response_id)
        if stored is None:
            raise _not_found(response_id)
        items = stored.input_items if order == "asc" else stored.input_items[::-1]
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}


class _Record:
    """Stores the response at its end when the request asked for it (`store`, true by default)."""

    def __init__(self, store: Any, body: CreateResponseRequest, response: ResponseObject, chain_length: int) -> None:
        self.store = store
        self.request = body
        self.response = response
        self.chain_length = chain_length

    async def save(self, body: dict[str, Any], conversation: tuple[ChatMessage, ...]) -> None:
        if not self.request.store:
            return
        # The Answer holds the whole conversation; this response keeps what its turn added to the chain.
        added = conversation[self.chain_length:]
        await self.store.save_response(StoredResponse(
            self.response.id, self.request.previous_response_id, time.time(), body, listed_input(self.request),
            tuple(added)))

    async def failed(self, response: ResponseObject, message: str) -> dict[str, Any]:
        body = response.fail(message)
        await self.save(body, ())
        return body


def _parse(raw: bytes) -> CreateResponseRequest:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.")
    try:
        return CreateResponseRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # Union branches ("str", "list[...]", tags) are pydantic's bookkeeping, not the client's fields.
        parts = [str(p) for p in first["loc"]
                 if not str(p).startswith(("str", "list[", "function-", "dict[")) and str(p) not in _TAGS]
        param = ".".join(parts)
        raise APIError(400, f"Invalid value for '{param}': {first['msg']}", param=param or None) from None


_TAGS = {"message", "function_call", "function_call_output"}


def _chat_tool_choice(choice: str | Mapping[str, Any] | None) -> ToolChoice | None:
    """The Responses form {"type": "function", "name": ...} in the Chat Completions form the agent uses."""
    if isinstance(choice, Mapping):
        if choice.get("type") == "function" and isinstance(choice.get("name"), str):
            return {"type": "function", "function": {"name": choice["name"]}}
        raise APIError(400, "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}.",
                       param="tool_choice", code="invalid_value")
    return choice


def _not_found(response_id: str, param: str | None = None) -> APIError:
    return APIError(404, f"Response with id '{response_id}' not found.", param=param, code="not_found")
