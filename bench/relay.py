"""The baseline: a bare FastAPI + uvicorn + openai-SDK relay with no agent work, the stack's own limit.

`python bench/relay.py --upstream URL [--port N]` prints "relay ready on URL" once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from openai import AsyncOpenAI


def create_app(upstream: str) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    client = AsyncOpenAI(base_url=upstream, api_key="x", max_retries=0)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        if not body.get("stream"):
            completion = await client.chat.completions.create(**body)
            return JSONResponse(completion.model_dump())
        stream = await client.chat.completions.create(**body)

        async def events() -> AsyncIterator[bytes]:
            async with stream:
                async for chunk in stream:
                    yield b"data: " + chunk.model_dump_json().encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True, help="base URL of the OpenAI-compatible upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.create_server((args.host, args.port), backlog=2048)
    # uvicorn's defaults as `uvicorn app:app` would run it: uvloop and httptools when installed.
    config = uvicorn.Config(create_app(args.upstream), lifespan="off", access_log=False, log_level="warning",
                            timeout_keep_alive=30)
    server = uvicorn.Server(config)
    print(f"relay ready on http://{args.host}:{sock.getsockname()[1]}/v1", flush=True)
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
