"""Pydantic request and response models of OpenAI's Responses API (``/v1/responses``).

Field names and shapes follow the official ``openai`` SDK's ``types/responses``. Requests
ignore unknown fields; ``input`` is a string or a list of items: messages (``type`` may be
left out; content a string or ``input_text`` / ``input_image`` / ``input_file`` parts, an
assistant's ``output_text`` / ``refusal``), ``function_call``, ``function_call_output`` and
``reasoning`` items. An item or tool of another type is a 400 naming its path. A string
holding a lone surrogate is a 400 too. Only function tools exist here; ``tool_choice`` is
``auto`` / ``none`` / ``required`` or ``{"type": "function", "name"}``.

Replies are ``response`` objects whose ``output`` holds ``reasoning``, ``message``
(``output_text``) and ``function_call`` items; items are also what is stored and listed
(``input_items``), as plain dicts in these shapes with ids.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from ..openai.protocol import Lenient, TextRequest

ItemStatus = Literal["in_progress", "completed", "incomplete"]
MAX_TOOLS = 128


def new_id(prefix: str) -> str:
    """An id in OpenAI's style for responses (``resp``) and items (``msg``, ``fc``, ...)."""
    return f"{prefix}_{uuid.uuid4().hex}"




# --- input content parts


class InputText(Lenient):
    type: Literal["input_text"]
    text: str


class InputImage(Lenient):
    """An image by URL (http(s), ``data:``, a path under the media root) or by file id."""

    type: Literal["input_image"]
    image_url: str | None = Field(default=None, min_length=1)
    file_id: str | None = Field(default=None, min_length=1)
    detail: Literal["auto", "low", "high", "original"] = "auto"

    @model_validator(mode="after")
    def _one_source(self) -> InputImage:
        if (self.image_url is None) == (self.file_id is None):
            raise ValueError("an input_image needs exactly one of 'image_url' or 'file_id'")
        return self


class InputFile(Lenient):
    """An uploaded file (``POST /v1/files``) by id; ``file_url`` / ``file_data`` are not
    taken (a 400 says so)."""

    type: Literal["input_file"]
    file_id: str | None = Field(default=None, min_length=1)
    filename: str | None = None

    @model_validator(mode="after")
    def _by_id(self) -> InputFile:
        if self.file_id is None:
            raise ValueError("an input_file needs a 'file_id' (upload it with POST /v1/files; "
                             "file_url and file_data are not supported)")
        return self


class OutputText(Lenient):
    type: Literal["output_text"]
    text: str
    annotations: list[Any] = Field(default_factory=list)


class Refusal(Lenient):
    type: Literal["refusal"]
    refusal: str


InputPart = Annotated[InputText | InputImage | InputFile, Field(discriminator="type")]
ContentPart = Annotated[InputText | InputImage | InputFile | OutputText | Refusal,
                        Field(discriminator="type")]


# --- input items


class MessageItem(Lenient):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallItem(Lenient):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallOutputItem(Lenient):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[InputPart]
    id: str | None = None
    status: ItemStatus | None = None


class ReasoningItem(Lenient):
    """An earlier turn's reasoning a client sends back; kept, not shown to the model."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[Any] = Field(default_factory=list)
    content: list[Any] | None = None
    encrypted_content: str | None = None


def _item_type(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type", "message")  # a message may leave its type out
        return kind if isinstance(kind, str) else None
    return getattr(value, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_type)]


# --- request options


class FunctionTool(Lenient):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceFunction(Lenient):
    type: Literal["function"]
    name: str


class TextFormatText(Lenient):
    type: Literal["text"]


class TextFormatJsonObject(Lenient):
    type: Literal["json_object"]


class TextFormatJsonSchema(Lenient):
    type: Literal["json_schema"]
    name: str = "response"
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


TextFormat = Annotated[TextFormatText | TextFormatJsonObject | TextFormatJsonSchema,
                       Field(discriminator="type")]


class TextConfig(Lenient):
    format: TextFormat = Field(default_factory=lambda: TextFormatText(type="text"))
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(Lenient):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


ToolChoice = Literal["auto", "none", "required"] | ToolChoiceFunction

_HELLO: dict[str, Any] = {"model": "default", "input": "Hello", "max_output_tokens": 8}


class ResponsesRequest(TextRequest):
    """``POST /v1/responses``."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        _HELLO, {**_HELLO, "stream": True}, {**_HELLO, "instructions": "Be terse."}]})

    model: str | None = None
    input: str | list[InputItem]
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1)
    store: bool = True
    stream: bool = False
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    tools: list[FunctionTool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None


# --- output


class OutputTextOut(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    id: str = Field(default_factory=lambda: new_id("msg"))
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: ItemStatus = "completed"
    content: list[OutputTextOut] = Field(default_factory=list)


class FunctionCallOut(BaseModel):
    id: str = Field(default_factory=lambda: new_id("fc"))
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    status: ItemStatus = "completed"


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class ReasoningOut(BaseModel):
    id: str = Field(default_factory=lambda: new_id("rs"))
    type: Literal["reasoning"] = "reasoning"
    summary: list[Any] = Field(default_factory=list)
    content: list[ReasoningText] = Field(default_factory=list)
    status: ItemStatus = "completed"


OutputItem = Annotated[OutputMessage | FunctionCallOut | ReasoningOut,
                       Field(discriminator="type")]


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class Usage(BaseModel):
    input_tokens: int = 0
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int = 0


class ResponseError(BaseModel):
    code: str
    message: str


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens", "content_filter"]


ResponseStatus = Literal["completed", "incomplete", "failed", "in_progress"]


class ResponseObject(BaseModel):
    """A ``response``: what ``POST`` returns, ``GET`` retrieves and events carry."""

    id: str = Field(default_factory=lambda: new_id("resp"))
    object: Literal["response"] = "response"
    created_at: int = Field(default_factory=lambda: int(time.time()))
    completed_at: int | None = None
    status: ResponseStatus = "in_progress"
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    model: str
    instructions: str | None = None
    output: list[OutputItem] = Field(default_factory=list)
    previous_response_id: str | None = None
    store: bool = True
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    reasoning: dict[str, Any] | None = None
    truncation: Literal["disabled"] = "disabled"
    usage: Usage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class InputItemList(BaseModel):
    """``GET /v1/responses/{id}/input_items``: items as they were given (with ids), or the
    earlier turns' output items when the response continued a conversation."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
