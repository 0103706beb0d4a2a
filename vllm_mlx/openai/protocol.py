"""Pydantic request and response models of the OpenAI-compatible API.

Requests ignore unknown fields (clients send many); messages are kept as raw JSON and
parsed by :mod:`vllm_mlx.content`, which reports errors with the exact JSON path.
vLLM-style extensions (``top_k``, ``min_p``, ``repetition_penalty``, ``ignore_eos``,
``min_tokens``, ``skip_special_tokens``: true by default, as in vLLM) and the video sampling
fields (``video_fps``, ``video_max_frames``, at top level or nested in a literal
``extra_body`` object) are accepted.

A string anywhere in a request (keys too) holding a lone surrogate is a 400 ``invalid_text``
naming its path; ``tools`` and a ``response_format`` schema are bounded in size and nesting
(400 ``schema_too_large``, see :mod:`.validation`).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ..content import ROLES
from ..errors import APIError, refuse_surrogates
from .validation import check_schema_size, check_template_kwargs

MAX_VIDEO_FPS = 120
MAX_VIDEO_FRAMES = 1024


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class Lenient(BaseModel):
    """A client's JSON: fields this server does not know are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class TextRequest(Lenient):
    """A request body whose strings must be text: a lone surrogate anywhere is a 400
    naming the field's path (an APIError, not a ValueError)."""

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        refuse_surrogates(data)
        return data



class StreamOptions(Lenient):
    include_usage: bool = False


class JsonSchemaSpec(Lenient):
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


def _is_wrapper(spec: dict[str, Any]) -> bool:
    return "schema" in spec or "name" in spec


class ResponseFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"]
    # OpenAI's {name, schema, strict} wrapper, or a bare JSON schema
    json_schema: dict[str, Any] | None = None

    @field_validator("json_schema")
    @classmethod
    def _check_wrapper(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_schema_size(value, "response_format.json_schema")
        # A wrapper with one bad field must be refused, not taken for a bare schema.
        if value is not None and _is_wrapper(value):
            try:
                JsonSchemaSpec.model_validate(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise ValueError(f"{where}: {first['msg']}") from None
        return value

    def schema_dict(self) -> dict[str, Any] | None:
        """The schema, whether wrapped as ``{name, schema, strict}`` or given bare."""
        spec = self.json_schema
        if spec is not None and _is_wrapper(spec):
            schema = spec.get("schema")
            return schema if isinstance(schema, dict) else None
        return spec


class SamplingFields(TextRequest):
    model: str | None = None
    # seconds the model may stay loaded once idle after this request (LM Studio's ``ttl``)
    ttl: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    # Below 0.01 the penalty overflows logits to inf and the log-probabilities to NaN.
    repetition_penalty: float | None = Field(default=None, ge=0.01, le=10)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)
    skip_special_tokens: bool = True  # vLLM's: special tokens' text left out of replies
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stop sequences")
        return value

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


def _part(kind: str | list[str], field: str, value: dict[str, Any]) -> dict[str, Any]:
    type_ = {"enum": kind} if isinstance(kind, list) else {"const": kind}
    return {"type": "object", "required": ["type", field],
            "properties": {"type": type_, field: value}}


_URL = {"type": "string", "pattern": "\\S"}
_MEDIA_REF = {"anyOf": [_URL, {"type": "object", "required": ["url"], "properties": {"url": _URL}}]}
# What vllm_mlx.content.parse_messages accepts; documentation only (it parses messages itself,
# reporting errors with their JSON path).
MESSAGE_JSON_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["role"],
    "properties": {
        "role": {"enum": list(ROLES)},
        "content": {"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": {
            "anyOf": [
                {"type": "string"},
                _part(["text", "input_text"], "text", {"type": "string"}),
                _part(["image_url", "input_image"], "image_url", _MEDIA_REF),
                {**_part(["image_url", "input_image"], "url", _MEDIA_REF),
                 "not": {"required": ["image_url"]}},
                _part("image", "image", _MEDIA_REF),
                _part("video_url", "video_url", _MEDIA_REF),
                _part("video", "video", _MEDIA_REF),
                _part("input_file", "file_id", {"type": "string", "minLength": 1}),
                _part("file", "file", {"type": "object", "properties": {
                    "file_data": {"type": "string"}, "file_id": {"type": "string"},
                    "filename": {"type": "string"}}}),
            ]}}]},
    },
}


class ChatCompletionRequest(SamplingFields):
    messages: list[Any] = Field(min_length=1, json_schema_extra={"items": MESSAGE_JSON_SCHEMA})
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    video_fps: float | None = Field(default=None, gt=0, le=MAX_VIDEO_FPS)
    video_max_frames: int | None = Field(default=None, ge=1, le=MAX_VIDEO_FRAMES)
    extra_body: dict[str, Any] | None = None
    # function calling (checked by vllm_mlx.openai.tool_calls.ToolSet)
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # the deprecated forms of tools / tool_choice (vllm_mlx.openai.prompted_tools)
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None
    # variables for the chat template (vLLM's), and two shortcuts into it
    chat_template_kwargs: dict[str, Any] | None = None
    enable_thinking: bool | None = None  # Qwen3-style templates' thinking switch
    reasoning_effort: Literal["low", "medium", "high"] | None = None  # gpt-oss templates

    @classmethod
    def checked(cls, body: dict[str, Any]) -> ChatCompletionRequest:
        """``body`` as a request (another API's request translated); its first problem
        is a 400 naming the field."""
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise APIError(400, f"{where}: {first.get('msg', 'invalid value')}",
                           param=where or None) from None

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_kwargs(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_template_kwargs(value)
        return value

    def template_kwargs(self) -> dict[str, Any]:
        """What the chat template is given besides the messages and tools."""
        shortcuts = {"enable_thinking": self.enable_thinking,
                     "reasoning_effort": self.reasoning_effort}
        return {**{k: v for k, v in shortcuts.items() if v is not None},
                **(self.chat_template_kwargs or {})}

    @field_validator("tools")
    @classmethod
    def _tools_size(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None:  # checked further (JSON Schema) off the event loop
            check_schema_size(value, "tools")
        return value

    @model_validator(mode="after")
    def _lift_extra_body(self) -> ChatCompletionRequest:
        nested = self.extra_body or {}
        fps, frames = nested.get("video_fps"), nested.get("video_max_frames")
        if self.video_fps is None and isinstance(fps, (int, float)) and not isinstance(fps, bool):
            self.video_fps = float(fps)
        if self.video_max_frames is None and isinstance(frames, int) \
                and not isinstance(frames, bool):
            self.video_max_frames = frames
        # lifted values skip the field constraints: check the same bounds here
        if self.video_fps is not None and not 0 < self.video_fps <= MAX_VIDEO_FPS:
            raise ValueError(f"video_fps must be > 0 and <= {MAX_VIDEO_FPS}")
        if self.video_max_frames is not None \
                and not 1 <= self.video_max_frames <= MAX_VIDEO_FRAMES:
            raise ValueError(f"video_max_frames must be between 1 and {MAX_VIDEO_FRAMES}")
        return self


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class CompletionRequest(SamplingFields):
    """A prompt is text or token ids, one or a batch of them, as OpenAI accepts."""

    prompt: (str | list[Annotated[str, Field(min_length=1)]] | TokenIds
             | Annotated[list[TokenIds], Field(min_length=1)]) = Field(min_length=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, int] | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None = None


class ChatMessageOut(BaseModel):
    """The reply; ``content`` is null beside tool calls, ``tool_calls`` absent without any
    (as OpenAI sends them). A model with a reasoning format (:mod:`.reasoning`) sends its
    reasoning as ``reasoning_content`` (the name DeepSeek's API, vLLM, LiteLLM and Open WebUI
    read) and as ``reasoning`` (newer vLLM's and OpenRouter's name); both are absent
    without any."""

    role: Literal["assistant"] = "assistant"
    content: str | None = ""
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, str] | None = None  # a request in the legacy functions form

    @model_serializer(mode="wrap")
    def _calls_when_made(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for optional in ("tool_calls", "reasoning_content", "reasoning", "function_call"):
            if out.get(optional) is None:
                out.pop(optional, None)
        return out


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo
    timing: dict[str, float] | None = None


class DeltaMessage(BaseModel):
    """What a stream chunk adds; fields it does not carry are left out, as OpenAI does (a
    client may test ``"tool_calls" in delta`` and then iterate it)."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None  # both names, as on ChatMessageOut
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, str] | None = None  # as on ChatMessageOut

    @model_serializer(mode="wrap")
    def _present_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChatChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: UsageInfo | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None


class ModelCapabilities(BaseModel):
    vision: bool
    video: bool
    native_video: bool
    max_context: int | None = None
    input_modalities: list[str] = Field(default_factory=lambda: ["text"])
    max_images_per_request: int | None = None  # None: no limit of the model's own
    model_type: str | None = None
    quantization_bits: int | None = None  # None: not quantized
    # function calling: "template" (the chat template shows tools) or "prompted" (a system
    # message describes them); the form of its calls (--tool-call-parser names)
    tools: Literal["template", "prompted"] | None = None
    tool_call_format: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "vllm-mlx"
    root: str | None = None
    aliases: list[str] = Field(default_factory=list)
    capabilities: ModelCapabilities
    max_model_len: int | None = None
    random_weights: bool = False
    group_size: int = 1  # processes serving the model together (vllm_mlx.distributed)
    parallel: Literal["none", "tensor", "pipeline"] = "none"
    # several models per server (vllm_mlx.engine.registry): loaded on demand
    state: Literal["loaded", "loading", "available", "failed"] = "loaded"
    kind: Literal["text", "vision"] | None = None
    size_bytes: int | None = None  # the weights on disk
    default: bool = True  # the server's default model (the one 'default' names)
    error: str | None = None  # why it failed to load (state "failed")
    endpoints: list[str] = Field(default_factory=list)  # the routes that serve it


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
