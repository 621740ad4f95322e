"""The semantic events of a streamed response, in OpenAI's order, each with its sequence number."""

from __future__ import annotations

import json
from typing import Any

from mofaclaw.bus.reply import Answer
from mofaclaw.gateway.client_tools import argument_pieces
from mofaclaw.gateway.response_items import call_output, message_output, new_id, output_text


class ResponseEvents:
    """Builds the SSE events of one response. The message item opens at the first piece of text; the
    client's function calls follow it once the turn has ended."""

    def __init__(self) -> None:
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self._message_id: str | None = None
        self._text: list[str] = []

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    @property
    def text(self) -> str:
        return "".join(self._text)

    def delta(self, text: str) -> list[bytes]:
        events = self._open_message() if self._message_id is None else []
        self._text.append(text)
        events.append(self.event("response.output_text.delta", item_id=self._message_id, output_index=0,
                                 content_index=0, delta=text, logprobs=[]))
        return events

    def end(self, answer: Answer) -> list[bytes]:
        """The events that close the output: the message (if any) and the client's function calls."""
        events: list[bytes] = []
        if self._message_id is None and not answer.tool_calls:
            events += self.delta(answer.content) if answer.content else self._open_message()
        if self._message_id is not None:
            events += self._close_message()
        for call in answer.tool_calls:
            index, item_id = len(self.output), new_id("fc")
            events.append(self.event("response.output_item.added", output_index=index,
                                     item=call_output(call, item_id, "in_progress")))
            events += [self.event("response.function_call_arguments.delta", item_id=item_id, output_index=index,
                                  delta=piece) for piece in argument_pieces(call.arguments)]
            events.append(self.event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                                     name=call.name, arguments=call.arguments))
            item = call_output(call, item_id)
            self.output.append(item)
            events.append(self.event("response.output_item.done", output_index=index, item=item))
        return events

    def _open_message(self) -> list[bytes]:
        self._message_id = new_id("msg")
        return [
            self.event("response.output_item.added", output_index=0,
                       item=message_output("", self._message_id, "in_progress")),
            self.event("response.content_part.added", item_id=self._message_id, output_index=0, content_index=0,
                       part={"type": "output_text", "text": "", "annotations": [], "logprobs": []}),
        ]

    def _close_message(self) -> list[bytes]:
        item = message_output(self.text, self._message_id or "")
        self.output.append(item)
        where = {"item_id": self._message_id, "output_index": 0, "content_index": 0}
        return [
            self.event("response.output_text.done", **where, text=self.text, logprobs=[]),
            self.event("response.content_part.done", **where, part=output_text(self.text)),
            self.event("response.output_item.done", output_index=0, item=item),
        ]
