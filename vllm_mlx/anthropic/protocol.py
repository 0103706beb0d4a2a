"""Pydantic request and response models of Anthropic's Messages API (``/v1/messages``).

Requests ignore unknown fields (clients such as Claude Code send fields this server has no
use for); content blocks are a union discriminated by ``type`` (``text``, ``image`` with a
``base64`` or ``url`` source, ``tool_use``, ``tool_result``, and ``thinking`` /
``redacted_thinking`` blocks a client sends back, which are dropped). ``thinking``
(:class:`ThinkingConfig`) asks for the model's reasoning as ``thinking`` blocks. A string
anywhere in a request holding a lone surrogate is a 400 naming its path. Responses follow
Anthropic's shapes: a ``message`` with content blocks, ``stop_reason``, ``stop_sequence``
and ``usage``; errors are ``{"type": "error", "error": {"type", "message"}}`` (:func:`error_body`).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from ..errors import APIError
from ..openai.protocol import Lenient, TextRequest

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
MAX_STOP_SEQUENCES = 16  # what the engine's stop matcher is given at most (as OpenAI's)

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
                413: "request_too_large",
                422: "invalid_request_error", 429: "rate_limit_error",
                503: "overloaded_error", 529: "overloaded_error"}


PATH_PREFIX = "/v1/messages"  # the feature's routes: their errors are in Anthropic's shape


def is_anthropic_path(path: str) -> bool:
    """Whether an error at ``path`` (from any layer) is answered in Anthropic's shape."""
    return path == PATH_PREFIX or path.startswith(f"{PATH_PREFIX}/")


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status (``api_error`` for any other)."""
    return _ERROR_TYPES.get(status, "api_error")


def error_body(error: APIError) -> dict[str, Any]:
    """``error`` in Anthropic's shape (its ``param``, when known, is named in the message)."""
    return {"type": "error", "error": {"type": error_type(error.status),
                                       "message": error.message}}




class TextBlock(Lenient):
    type: Literal["text"]
    text: str


class Base64Source(Lenient):
    type: Literal["base64"]
    media_type: str = Field(pattern=r"^image/[\w.+-]+$")
    data: str = Field(min_length=1)


class URLSource(Lenient):
    type: Literal["url"]
    url: str = Field(min_length=1)


class ImageBlock(Lenient):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]


class ToolUseBlock(Lenient):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


ResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(Lenient):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ResultPart] | None = None
    is_error: bool | None = None


class ThinkingBlock(Lenient):
    """A reasoning block a client sends back with an earlier turn; not shown to the model."""

    type: Literal["thinking", "redacted_thinking"]


ContentBlock = Annotated[TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock
                         | ThinkingBlock, Field(discriminator="type")]


class MessageParam(Lenient):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ToolParam(Lenient):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class ToolChoice(Lenient):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if self.type == "tool" and not self.name:
            raise ValueError("a tool_choice of type 'tool' needs a 'name'")
        return self


_HELLO: list[JsonValue] = [{"role": "user", "content": "Hello"}]  # the schema's examples


class ThinkingConfig(Lenient):
    """``thinking``: ``enabled`` returns the model's reasoning as ``thinking`` blocks;
    ``disabled`` (as no ``thinking`` at all) turns the template's thinking switch off where it
    has one. ``budget_tokens`` is accepted and not enforced on its own: ``max_tokens`` bounds
    reasoning and answer together."""

    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = Field(default=None, ge=1)


class CountTokensRequest(TextRequest):
    """``/v1/messages/count_tokens``: a conversation (and its tools), not generated."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "claude-sonnet-4-5", "messages": _HELLO}]})

    model: str
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None

    @property
    def thinks(self) -> bool:
        return self.thinking is not None and self.thinking.type == "enabled"


class MessagesRequest(CountTokensRequest):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": _HELLO},
        {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": _HELLO, "stream": True}]})

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = Field(default=None, max_length=MAX_STOP_SEQUENCES)
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None  # accepted, not used
    stream: bool = False


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class ResponseText(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ResponseThinking(BaseModel):
    """The model's reasoning; ``signature`` is an opaque string (a digest of the text:
    this server does not check blocks sent back)."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str


def thinking_signature(thinking: str) -> str:
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


class ResponseToolUse(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class MessagesResponse(BaseModel):
    id: str = Field(default_factory=new_message_id)
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ResponseThinking | ResponseText | ResponseToolUse]
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage


class CountTokensResponse(BaseModel):
    input_tokens: int
