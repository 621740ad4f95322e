"""The wire format of POST /v1/responses: the request we accept, strictly typed, with its input items."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class _Wire(BaseModel):
    # Strict: "true" is not a boolean. Unknown fields are ignored: OpenAI adds fields often.
    model_config = ConfigDict(strict=True, extra="ignore")


class InputContentPart(_Wire):
    type: str
    text: str | None = None


class InputMessageItem(_Wire):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputContentPart]
    id: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.text and p.type in ("input_text", "output_text", "text"))


class InputFunctionCallItem(_Wire):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None


class InputFunctionCallOutputItem(_Wire):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[InputContentPart]
    id: str | None = None

    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "\n".join(p.text for p in self.output if p.text)


def _item_type(value: Any) -> str | None:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("message", "function_call", "function_call_output") else None


InputItem = Annotated[
    Annotated[InputMessageItem, Tag("message")] | Annotated[InputFunctionCallItem, Tag("function_call")]
    | Annotated[InputFunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_type, custom_error_type="invalid_item",
                  custom_error_message="an input item must be a message, function_call or function_call_output"),
]


class CreateResponseRequest(_Wire):
    model: str
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[dict[str, Any]] = []
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    max_output_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    metadata: dict[str, str] | None = None
