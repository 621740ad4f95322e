"""/v1/conversations: the server-side conversations of every channel, shaped like OpenAI's Conversations API.

A conversation id names a session key: a bare id (`laptop`, `conv_ab12`) is the API's own conversation,
session key `api:<id>`; an id with a colon is a session key as it stands (`cli:direct` is the terminal's,
`telegram:42` a chat's). So the page, the terminal and any API client can open the same conversation.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from mofaclaw.gateway.errors import APIError
from mofaclaw.session.base import ConversationInfo, SessionStore, StoredMessage

API_PREFIX = "api:"
MAX_ID_LENGTH = 200

Metadata = dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]]
ConversationId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH,
                                     description="A conversation id, or a session key such as cli:direct.")]


def session_key_of(conversation_id: str) -> str:
    return conversation_id if ":" in conversation_id else API_PREFIX + conversation_id


def conversation_id_of(session_key: str) -> str:
    rest = session_key.removeprefix(API_PREFIX)
    return rest if rest != session_key and ":" not in rest else session_key


class Conversation(BaseModel):
    """OpenAI's conversation object, plus its title, last activity and message count."""

    id: str
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, str]
    title: str
    updated_at: int
    message_count: int


class ConversationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Conversation]
    has_more: bool = False
    first_id: str | None
    last_id: str | None


class DeletedConversation(BaseModel):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateConversation(_Strict):
    metadata: Annotated[Metadata, Field(max_length=16)] | None = None
    title: str | None = Field(None, max_length=200)
    items: list[dict] | None = Field(None, description="Not supported: a conversation starts empty.")


class UpdateConversation(_Strict):
    metadata: Annotated[Metadata, Field(max_length=16)] | None = None
    title: str | None = Field(None, max_length=200, description="A new title; \"\" goes back to the first message.")


class TextPart(BaseModel):
    type: Literal["input_text", "output_text"]
    text: str
    annotations: list[dict] | None = None
    logprobs: list[dict] | None = None


class MessageItem(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["completed"] = "completed"
    role: Literal["user", "assistant"]
    content: list[TextPart]


class FunctionCallItem(BaseModel):
    type: Literal["function_call"] = "function_call"
    id: str
    status: Literal["completed"] = "completed"
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(BaseModel):
    type: Literal["function_call_output"] = "function_call_output"
    id: str
    status: Literal["completed"] = "completed"
    call_id: str
    output: str


Item = Annotated[MessageItem | FunctionCallItem | FunctionCallOutputItem, Field(discriminator="type")]


class ItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool
    first_id: str | None
    last_id: str | None


def router(store: SessionStore) -> APIRouter:
    routes = APIRouter(prefix="/v1/conversations", tags=["conversations"])

    async def found(conversation_id: str) -> ConversationInfo:
        info = await store.conversation(session_key_of(conversation_id))
        if info is None:
            raise APIError(404, f"No conversation with id '{conversation_id}'.", param="conversation_id",
                           code="conversation_not_found")
        return info

    @routes.get("", response_model=ConversationList, summary="List conversations (every channel's)")
    async def list_conversations() -> ConversationList:
        data = [_conversation(c) for c in await store.conversations()]
        return ConversationList(data=data, first_id=data[0].id if data else None,
                                last_id=data[-1].id if data else None)

    @routes.post("", response_model=Conversation, summary="Create a conversation")
    async def create_conversation(body: Annotated[CreateConversation | None, Body()] = None) -> Conversation:
        body = body or CreateConversation()
        if body.items:
            raise APIError(400, "Creating a conversation with items is not supported: create it empty, then send "
                           "its first message to /v1/chat/completions with its conversation_id.", param="items")
        info = await store.create(session_key_of(f"conv_{uuid.uuid4().hex}"), body.metadata or {})
        if info is None:  # a uuid4 collision: not expected in this universe
            raise APIError(409, "Could not create a conversation; try again.")
        if body.title:
            info = await store.update(info.key, title=body.title) or info
        return _conversation(info)

    @routes.get("/{conversation_id}", response_model=Conversation, summary="Get a conversation")
    async def get_conversation(conversation_id: ConversationId) -> Conversation:
        return _conversation(await found(conversation_id))

    @routes.post("/{conversation_id}", response_model=Conversation, summary="Rename it or set its metadata")
    async def update_conversation(conversation_id: ConversationId, body: UpdateConversation) -> Conversation:
        await found(conversation_id)
        info = await store.update(session_key_of(conversation_id), title=body.title, metadata=body.metadata)
        return _conversation(info or await found(conversation_id))

    @routes.delete("/{conversation_id}", response_model=DeletedConversation, summary="Delete a conversation")
    async def delete_conversation(conversation_id: ConversationId) -> DeletedConversation:
        if not await store.delete(session_key_of(conversation_id)):
            await found(conversation_id)  # raises the 404
        return DeletedConversation(id=conversation_id, deleted=True)

    @routes.get("/{conversation_id}/items", response_model=ItemList, summary="List a conversation's items")
    async def list_items(
        conversation_id: ConversationId,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemList:
        await found(conversation_id)
        items = [item for stored in await store.messages(session_key_of(conversation_id)) for item in _items(stored)]
        if order == "desc":
            items.reverse()
        if after is not None:
            position = next((i for i, item in enumerate(items) if item.id == after), None)
            if position is None:
                raise APIError(400, f"No item with id '{after}' in this conversation.", param="after")
            items = items[position + 1 :]
        page = items[:limit]
        return ItemList(data=page, has_more=len(items) > limit, first_id=page[0].id if page else None,
                        last_id=page[-1].id if page else None)

    return routes


def _conversation(info: ConversationInfo) -> Conversation:
    return Conversation(id=conversation_id_of(info.key), created_at=int(info.created_at), metadata=info.metadata,
                        title=info.title, updated_at=int(info.updated_at), message_count=info.message_count)


def _items(stored: StoredMessage) -> list[MessageItem | FunctionCallItem | FunctionCallOutputItem]:
    """A stored message as OpenAI items: its text, then one function_call per tool call it made."""
    message, n = stored.message, stored.id
    items: list[MessageItem | FunctionCallItem | FunctionCallOutputItem] = []
    if message.role == "tool":
        return [FunctionCallOutputItem(id=f"fco_{n}", call_id=message.tool_call_id or "", output=message.content or "")]
    if message.role == "user" and message.content:
        items.append(MessageItem(id=f"msg_{n}", role="user", content=[TextPart(type="input_text",
                                                                               text=message.content)]))
    elif message.role == "assistant" and message.content:
        part = TextPart(type="output_text", text=message.content, annotations=[], logprobs=[])
        items.append(MessageItem(id=f"msg_{n}", role="assistant", content=[part]))
    items += [FunctionCallItem(id=f"fc_{n}_{i}", call_id=call.id, name=call.name, arguments=call.arguments)
              for i, call in enumerate(message.tool_calls)]
    return items
