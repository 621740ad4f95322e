"""Server-Sent Events framing of chat.completion.chunk objects."""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class ChunkWriter:
    """Builds the chunks of one streamed completion: same id and created on every chunk."""

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        self.base = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                     "model": model}
        self.include_usage = include_usage

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        data = {**self.base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}]}
        if self.include_usage:
            data["usage"] = None
        return event(data)

    def usage(self, usage: dict[str, int]) -> bytes:
        return event({**self.base, "choices": [], "usage": usage})
