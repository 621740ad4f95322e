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

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool,
                 include_progress: bool = False) -> None:
        self.base = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                     "model": model}
        self.include_usage = include_usage
        self.include_progress = include_progress

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        data = {**self.base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}]}
        if self.include_usage:
            data["usage"] = None
        return event(data)

    def usage(self, usage: dict[str, int]) -> bytes:
        return event({**self.base, "choices": [], "usage": usage})

    def progress(self, tool: str, summary: str, text: str) -> bytes:
        """A named `progress` event (asked for with stream_options.include_progress): a tool being run."""
        data = {"id": self.base["id"], "object": "mofaclaw.progress", "type": "tool_call", "tool": tool,
                "summary": summary, "text": text}
        return b"event: progress\n" + event(data)
