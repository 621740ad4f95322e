"""ApiChannel: hands the agent's outbound messages to the HTTP request that waits for them, by request_id."""

from __future__ import annotations

import asyncio
import logging

from mofaclaw.bus.events import OutboundMessage

log = logging.getLogger(__name__)


class ApiChannel:
    name = "api"

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Queue[OutboundMessage]] = {}

    def open(self, request_id: str) -> asyncio.Queue[OutboundMessage]:
        # Unbounded on purpose: one turn's output is finite, and a slow HTTP client must not
        # stall the dispatcher that serves every other request.
        queue: asyncio.Queue[OutboundMessage] = asyncio.Queue()
        self._pending[request_id] = queue
        return queue

    def close(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    @property
    def open_requests(self) -> int:
        return len(self._pending)

    def shutdown(self) -> None:
        """End every open request now (503 / an in-band error), so the server can stop promptly."""
        for request_id, queue in list(self._pending.items()):
            queue.put_nowait(OutboundMessage(self.name, "", "The gateway is shutting down; try again shortly.",
                                             kind="error", request_id=request_id, error_code="shutting_down"))

    async def start(self) -> None:
        await asyncio.Event().wait()  # the HTTP server is run by the gateway; nothing to poll here

    async def stop(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> None:
        queue = self._pending.get(message.request_id or "")
        if queue is None:
            # The client went away, or this is a message no request waits for (a subagent's
            # late report to a stateless conversation): nobody can receive it.
            log.info("api: no open request %s for a %s message; dropped", message.request_id, message.kind)
            return
        queue.put_nowait(message)

    async def send_delta(self, message: OutboundMessage) -> None:
        queue = self._pending.get(message.request_id or "")
        if queue is not None:
            queue.put_nowait(message)
