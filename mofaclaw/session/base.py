"""The SessionStore protocol: whole turns in, recent history out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mofaclaw.session.paused import PausedTurn
from mofaclaw.session.responses import StoredResponse
from mofaclaw.types import ChatMessage, ToolCall


@dataclass(frozen=True, slots=True)
class SessionInfo:
    key: str
    message_count: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class Recent:
    """What a stored turn reads before it starts: the history window, the conversation's live paused
    turn, and when the conversation was created (None: it does not exist yet). The turn hands that
    creation time back to `append_turn`, so a conversation deleted while the turn ran stays deleted."""

    history: list[ChatMessage]
    paused: PausedTurn | None
    created_at: float | None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    message: ChatMessage
    created_at: float


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """A conversation as a person sees it: its title is the one given, else its first user message."""

    key: str
    title: str
    metadata: dict[str, str]
    created_at: float
    updated_at: float
    message_count: int


class PausedTurnStore(Protocol):
    """Turns waiting for a client's tool results (`session_key` None: a stateless turn, found by call ids)."""

    async def pause_turn(self, session_key: str | None, pending: Sequence[ToolCall],
                         messages: Sequence[ChatMessage], ttl: float) -> PausedTurn: ...

    async def paused_turn(self, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
        """The live (unexpired) paused turn, left in place."""
        ...

    async def take_paused_turn(self, session_key: str | None, call_ids: Sequence[str]) -> PausedTurn | None:
        """The live paused turn, removed in the same transaction."""
        ...

    async def restore_paused_turn(self, turn: PausedTurn) -> None: ...


class ResponseStore(Protocol):
    """Responses API objects; each knows its previous one, so a chain is a conversation."""

    async def save_response(self, response: StoredResponse) -> None: ...

    async def response(self, response_id: str) -> StoredResponse | None: ...

    async def delete_response(self, response_id: str) -> bool: ...

    async def response_chain(self, response_id: str) -> list[ChatMessage] | None: ...


class SessionStore(PausedTurnStore, ResponseStore, Protocol):
    async def append_turn(self, key: str, messages: Sequence[ChatMessage], *,
                          created_at: float | None = None) -> bool:
        """Store a whole turn, all or nothing, creating the conversation if need be. With `created_at`
        (from `recent`), only into that same conversation: False, nothing stored, when it was deleted
        (or deleted and made again) meanwhile."""
        ...

    async def history(self, key: str, limit: int) -> list[ChatMessage]:
        """The last `limit` messages (fewer, so that the window starts at a user message)."""
        ...

    async def recent(self, key: str, limit: int) -> Recent:
        """`history(key, limit)`, the live paused turn and the creation time, read in one visit to the
        database: what every stored turn needs before it starts."""
        ...

    async def messages(self, key: str) -> list[StoredMessage]: ...

    async def list_sessions(self) -> list[SessionInfo]: ...

    async def delete(self, key: str) -> bool: ...

    async def archive(self, key: str) -> str | None:
        """Move the conversation aside under a new key (kept, no longer active); returns that key."""
        ...

    async def unconsolidated(self, key: str, keep: int) -> list[StoredMessage]:
        """Messages older than the last `keep` that memory consolidation has not seen yet."""
        ...

    async def mark_consolidated(self, key: str, upto_id: int) -> None: ...

    async def conversations(self) -> list[ConversationInfo]:
        """Every conversation with its title, the most recently updated first."""
        ...

    async def conversation(self, key: str) -> ConversationInfo | None: ...

    async def create(self, key: str, metadata: dict[str, str]) -> ConversationInfo | None:
        """Start an empty conversation; None when the key is taken."""
        ...

    async def update(self, key: str, *, title: str | None = None,
                     metadata: dict[str, str] | None = None) -> ConversationInfo | None:
        """Rename it (title "" goes back to the first message) or replace its metadata; None if unknown."""
        ...

    async def connect(self) -> None:
        """Reach the database now (and migrate it); raises BackendUnavailable when it cannot be reached."""
        ...

    async def close(self) -> None: ...

