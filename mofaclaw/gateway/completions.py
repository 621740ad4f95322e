"""POST /v1/chat/completions: one HTTP request becomes one turn on the bus, answered whole or streamed."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.events import InboundMessage, OutboundMessage
from mofaclaw.gateway.body import parse_json_body
from mofaclaw.gateway.channel import ApiChannel
from mofaclaw.gateway.errors import APIError, error_body
from mofaclaw.gateway.schemas import (
    ChatCompletionRequest,
    conversation_of,
    new_input,
    parse_request,
    split_instructions,
    stateless_turn,
)
from mofaclaw.gateway.settings import GatewaySettings
from mofaclaw.gateway.sse import DONE, KEEPALIVE, ChunkWriter, event
from mofaclaw.providers.types import Usage

log = logging.getLogger(__name__)

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class CompletionService:
    def __init__(self, settings: GatewaySettings, bus: MessageBus, channel: ApiChannel) -> None:
        self.settings = settings
        self.bus = bus
        self.channel = channel
        self._cancels: set[asyncio.Task[None]] = set()

    async def handle(self, request: Request) -> Response:
        request_id = uuid.uuid4().hex
        client_request_id = request.headers.get("x-request-id") or request_id
        body = await _read_json(request)
        chat = parse_request(body)
        if chat.model not in self.settings.model_ids:
            raise APIError(404, f"The model '{chat.model}' does not exist; use one of: "
                           f"{', '.join(self.settings.model_ids)}.", param="model", code="model_not_found")
        conversation = conversation_of(chat, request.headers.get("x-conversation-id"))
        inbound = self._inbound(chat, conversation, request_id, request)
        headers = {"X-Request-Id": client_request_id}
        if conversation:
            headers["X-Conversation-Id"] = conversation
        queue = self.channel.open(request_id)
        await self.bus.publish_inbound(inbound)
        log.info("request %s: model=%s stream=%s conversation=%s", client_request_id, chat.model,
                 chat.stream, conversation or "-")
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            writer = ChunkWriter(f"chatcmpl-{request_id}", int(time.time()), chat.model, include_usage)
            return StreamingResponse(self._stream(inbound, queue, writer), media_type="text/event-stream",
                                     headers={**STREAM_HEADERS, **headers})
        return await self._complete(inbound, queue, chat.model, request, headers)

    def _inbound(self, chat: ChatCompletionRequest, conversation: str | None, request_id: str,
                 request: Request) -> InboundMessage:
        instructions, messages = split_instructions(chat.messages)
        sender = request.client.host if request.client else "unknown"
        if conversation:
            return InboundMessage("api", sender, conversation, new_input(messages), request_id=request_id,
                                  instructions=instructions, options=chat.options(), live_updates=chat.stream)
        history, content = stateless_turn(messages)
        return InboundMessage("api", sender, f"stateless-{request_id}", content, request_id=request_id,
                              history=history, instructions=instructions, options=chat.options(),
                              live_updates=chat.stream)

    async def _complete(self, inbound: InboundMessage, queue: asyncio.Queue[OutboundMessage], model: str,
                        request: Request, headers: dict[str, str]) -> Response:
        answer = asyncio.ensure_future(_final(queue))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({answer, gone}, timeout=self.settings.request_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            self.channel.close(inbound.request_id)
        if answer not in done:
            answer.cancel()
            self._cancel(inbound)
            if gone in done:
                log.info("request %s: client disconnected; turn cancelled", inbound.request_id)
                return Response(status_code=499)
            raise _timeout_error(self.settings.request_timeout)
        final = answer.result()
        if final.kind == "error":
            return _error_response(final, headers)
        return JSONResponse(_completion(inbound.request_id, model, final), headers=headers)

    async def _stream(self, inbound: InboundMessage, queue: asyncio.Queue[OutboundMessage],
                      writer: ChunkWriter) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.request_timeout
        finished = False
        try:
            yield writer.chunk({"role": "assistant", "content": ""})
            while True:
                wait = min(self.settings.keepalive_interval, deadline - loop.time())
                try:
                    async with asyncio.timeout(max(wait, 0)):
                        message = await queue.get()
                except TimeoutError:
                    if loop.time() < deadline:
                        yield KEEPALIVE  # silence while tools run; keeps proxies from closing us
                        continue
                    self._cancel(inbound)
                    finished = True
                    yield event(_timeout_error(self.settings.request_timeout).body)
                    yield DONE
                    return
                if message.kind == "delta":
                    yield writer.chunk({"content": message.content})
                elif message.kind == "message":
                    finished = True
                    yield writer.chunk({}, _finish_reason(message))
                    if writer.include_usage:
                        yield writer.usage(_usage(message.usage))
                    yield DONE
                    return
                elif message.kind == "error":
                    finished = True
                    _, body = _error_of(message)
                    yield event(body)
                    yield DONE
                    return
        finally:
            self.channel.close(inbound.request_id)
            if not finished:
                log.info("request %s: client disconnected; turn cancelled", inbound.request_id)
                self._cancel(inbound)

    def _cancel(self, inbound: InboundMessage) -> None:
        cancel = InboundMessage(inbound.channel, inbound.sender_id, inbound.chat_id, "",
                                request_id=inbound.request_id, kind="cancel")
        self._keep(self.bus.publish_inbound(cancel))

    def _keep(self, work: Coroutine[Any, Any, None]) -> None:
        # Called from finally blocks of cancelled requests: do not await there; keep the task.
        task = asyncio.ensure_future(work)
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)


async def _read_json(request: Request) -> Any:
    return parse_json_body(await request.body())


async def _final(queue: asyncio.Queue[OutboundMessage]) -> OutboundMessage:
    while True:
        message = await queue.get()
        if message.kind in ("message", "error"):
            return message


async def _disconnected(request: Request) -> None:
    # After the body is read, the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _finish_reason(message: OutboundMessage) -> str:
    return "length" if message.finish_reason == "length" else "stop"


def _usage(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def _completion(request_id: str, model: str, message: OutboundMessage) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": message.content, "refusal": None},
            "finish_reason": _finish_reason(message),
            "logprobs": None,
        }],
        "usage": _usage(message.usage),
    }


def _error_of(message: OutboundMessage) -> tuple[int, dict[str, Any]]:
    if message.error_code == "provider_error":
        return 502, error_body(message.content, "server_error", None, "upstream_error")
    if message.error_code == "provider_timeout":
        return 504, error_body(message.content, "server_error", None, "upstream_timeout")
    if message.error_code == "shutting_down":
        return 503, error_body(message.content, "server_error", None, "shutting_down")
    return 500, error_body(message.content, "server_error", None, message.error_code)


def _error_response(message: OutboundMessage, headers: dict[str, str]) -> JSONResponse:
    status, body = _error_of(message)
    return JSONResponse(body, status_code=status, headers=headers)


def _timeout_error(seconds: float) -> APIError:
    return APIError(504, f"The agent did not finish within {seconds:g}s (gateway.request_timeout); "
                    "the turn was cancelled.", type="server_error", code="timeout")
