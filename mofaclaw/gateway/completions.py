"""POST /v1/chat/completions: one HTTP request becomes one turn on the bus, answered whole or streamed."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from mofaclaw.bus.events import InboundMessage
from mofaclaw.bus.reply import Answer, Reply, ReplyChannel
from mofaclaw.errors import TurnFailed
from mofaclaw.gateway import client_tools
from mofaclaw.gateway.backend import AgentBackend
from mofaclaw.gateway.body import parse_json_body
from mofaclaw.gateway.chat_tools import chat_client_tools, check_paused, resumed_turn
from mofaclaw.gateway.conversations import session_key_of
from mofaclaw.gateway.errors import APIError
from mofaclaw.gateway.schemas import (
    ChatCompletionRequest,
    conversation_of,
    new_input,
    parse_request,
    request_id_of,
    split_instructions,
    stateless_turn,
)
from mofaclaw.gateway.settings import GatewaySettings
from mofaclaw.gateway.sse import DONE, KEEPALIVE, ChunkWriter
from mofaclaw.gateway.sse import event as sse_event
from mofaclaw.gateway.turns import ClientGone, answer_or_gone, paced, timeout_error, turn_error
from mofaclaw.types import Usage

log = logging.getLogger(__name__)

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class CompletionService:
    def __init__(self, settings: GatewaySettings, api: ReplyChannel, backend: AgentBackend | None = None) -> None:
        self.settings = settings
        self.api = api
        self.backend = backend

    async def handle(self, request: Request) -> Response:
        request_id = uuid.uuid4().hex
        client_request_id = request_id_of(request.headers.get("x-request-id"), request_id)
        body = await _read_json(request)
        chat = parse_request(body)
        if chat.model not in self.settings.model_ids:
            raise APIError(404, f"The model '{chat.model}' does not exist; use one of: "
                           f"{', '.join(self.settings.model_ids)}.", param="model", code="model_not_found")
        conversation = conversation_of(chat, request.headers.get("x-conversation-id"))
        inbound = self._inbound(chat, conversation, request_id, request)
        if conversation:
            await check_paused(self.backend, inbound.session_key, inbound.tool_results)
        headers = {"X-Request-Id": client_request_id}
        if conversation:
            headers["X-Conversation-Id"] = conversation
        reply = await self.api.ask(inbound)
        log.info("request %s: model=%s stream=%s conversation=%s", client_request_id, chat.model,
                 chat.stream, conversation or "-")
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            writer = ChunkWriter(f"chatcmpl-{request_id}", int(time.time()), chat.model, include_usage,
                                 include_progress=bool(chat.stream_options and chat.stream_options.include_progress))
            return StreamingResponse(self._stream(inbound, reply, writer), media_type="text/event-stream",
                                     headers={**STREAM_HEADERS, **headers})
        return await self._complete(inbound, reply, chat.model, request, headers)

    def _inbound(self, chat: ChatCompletionRequest, conversation: str | None, request_id: str,
                 request: Request) -> InboundMessage:
        instructions, messages = split_instructions(chat.messages)
        sender = request.client.host if request.client else "unknown"
        client = chat_client_tools(chat, self.backend)
        if resumed := resumed_turn(messages, conversation):
            chat_id = conversation or f"stateless-{request_id}"
            return InboundMessage("api", sender, chat_id, resumed.content, request_id=request_id,
                                  history=resumed.history, instructions=instructions, options=chat.options(),
                                  live_updates=chat.stream, client_tools=client, tool_results=resumed.tool_results)
        if conversation:
            return InboundMessage("api", sender, conversation, new_input(messages), request_id=request_id,
                                  session_key_override=session_key_of(conversation),
                                  instructions=instructions, options=chat.options(), live_updates=chat.stream,
                                  client_tools=client)
        history, content = stateless_turn(messages)
        return InboundMessage("api", sender, f"stateless-{request_id}", content, request_id=request_id,
                              history=history, instructions=instructions, options=chat.options(),
                              live_updates=chat.stream, client_tools=client)

    async def _complete(self, inbound: InboundMessage, reply: Reply, model: str, request: Request,
                        headers: dict[str, str]) -> Response:
        try:
            final = await answer_or_gone(reply, request, self.settings.request_timeout)
        except TurnFailed as exc:
            status, body = turn_error(exc)
            return JSONResponse(body, status_code=status, headers=headers)
        except ClientGone:
            log.info("request %s: client disconnected; turn cancelled", inbound.request_id)
            self.api.cancel(inbound)
            return Response(status_code=499)
        except APIError:  # the time ran out
            self.api.cancel(inbound)
            raise
        return JSONResponse(_completion(inbound.request_id, model, final), headers=headers)

    async def _stream(self, inbound: InboundMessage, reply: Reply, writer: ChunkWriter) -> AsyncIterator[bytes]:
        finished = False
        try:
            yield writer.chunk({"role": "assistant", "content": ""})
            s = self.settings
            async with aclosing(paced(reply, s.keepalive_interval, s.request_timeout)) as events:
                async for event in events:
                    if event is None:
                        yield KEEPALIVE
                    elif isinstance(event, Answer):
                        finished = True
                        for delta in client_tools.call_deltas(event.tool_calls):
                            yield writer.chunk(delta)
                        yield writer.chunk({}, _finish_reason(event))
                        if writer.include_usage:
                            yield writer.usage(_usage(event.usage))
                        yield DONE
                    elif event.kind == "delta":
                        yield writer.chunk({"content": event.text})
                    elif event.kind == "progress" and writer.include_progress:
                        yield writer.progress(event.tool_name or "", event.tool_summary, event.text)
        except TimeoutError:
            self.api.cancel(inbound)
            finished = True
            yield sse_event(timeout_error(self.settings.request_timeout).body)
            yield DONE
        except TurnFailed as exc:
            finished = True
            yield sse_event(turn_error(exc)[1])
            yield DONE
        finally:
            reply.close()
            if not finished:
                log.info("request %s: client disconnected; turn cancelled", inbound.request_id)
                self.api.cancel(inbound)


async def _read_json(request: Request) -> Any:
    return parse_json_body(await request.body())


def _finish_reason(answer: Answer) -> str:
    if answer.tool_calls:
        return "tool_calls"
    return "length" if answer.finish_reason == "length" else "stop"


def _usage(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def _completion(request_id: str, model: str, answer: Answer) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": client_tools.message_of(answer),
            "finish_reason": _finish_reason(answer),
            "logprobs": None,
        }],
        "usage": _usage(answer.usage),
    }
