"""Request and response models of the VLM Run-compatible prediction API.

Contract (``shared/specs/domains.md``): requests ignore unknown fields (clients send many, e.g.
``gql_stmt``, ``service_tier``); ``config`` and ``metadata`` default as the ``vlmrun`` SDK does.
An empty ``json_schema`` (``{}``, as in the documented curl example) means "none"; a
``response_model`` that is a JSON object is taken as the schema, any other value is ignored.
A schema is bounded in size and nesting (400 ``schema_too_large``, see
:mod:`vllm_mlx.openai.validation`); a string anywhere in a request holding a lone surrogate
is a 400 ``invalid_text``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import refuse_surrogates
from ..openai.protocol import Lenient
from ..openai.validation import check_schema_size

JobStatus = Literal["enqueued", "pending", "running", "completed", "failed", "paused"]
ElementType = Literal["image", "page", "video", "audio"]
FILE_PURPOSES = ("fine-tune", "assistants", "assistants_output", "batch", "batch_output",
                 "vision", "datasets")


class GenerationConfig(Lenient):
    prompt: str | None = Field(default=None, max_length=20_000)
    detail: Literal["auto", "lo", "hi"] = "auto"
    response_model: Any = None
    json_schema: dict[str, Any] | None = None
    max_retries: int = Field(default=3, ge=0, le=10)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    confidence: bool = False
    grounding: bool = False
    page_indices: list[int] | None = Field(default=None, max_length=1000)

    @field_validator("json_schema", "response_model")
    @classmethod
    def _schema_size(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dict | list):  # checked further off the event loop
            check_schema_size(value, f"config.{info.field_name}")
        return value

    @model_validator(mode="after")
    def _schema(self) -> GenerationConfig:
        if not self.json_schema:
            self.json_schema = None
        if self.json_schema is None and isinstance(self.response_model, dict):
            self.json_schema = self.response_model or None
        return self

    @field_validator("page_indices")
    @classmethod
    def _pages(cls, value: list[int] | None) -> list[int] | None:
        """An empty list means every page, as leaving it out does; repeats are dropped."""
        if value is not None and any(i < 0 for i in value):
            raise ValueError("page indices are 0-based and must be >= 0")
        if value is None:
            return None
        return list(dict.fromkeys(value)) or None


class RequestMetadata(Lenient):
    environment: Literal["dev", "staging", "prod"] = "prod"
    session_id: str | None = Field(default=None, max_length=256)
    allow_training: bool = True
    allow_retention: bool = True
    allow_logging: bool = True
    extra: dict[str, Any] | None = None


class _Checked(Lenient):
    """A request body: no string in it may hold a lone surrogate (400 ``invalid_text``)."""

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        refuse_surrogates(data)
        return data


class _PredictionRequest(_Checked):
    model: str = "vlm-1"
    domain: str | None = Field(default=None, min_length=1, max_length=200)
    batch: bool = False
    config: GenerationConfig = Field(default_factory=GenerationConfig)
    metadata: RequestMetadata = Field(default_factory=RequestMetadata)
    callback_url: str | None = Field(default=None, min_length=1, max_length=2048)
    id: str | None = Field(default=None, max_length=256)
    created_at: str | None = Field(default=None, max_length=64)


# An orange 32x32 PNG: the documented example request (also what API fuzzers start from).
_EXAMPLE_IMAGE = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAK0lEQVR4"
                  "2u3NQQEAQAQAMC6NiCKKdSX4bQWW0xWXXhwTCAQCgUAgEAgEWz6b/gGoTIbtSQAAAABJRU5ErkJggg==")


class ImagePredictionRequest(_PredictionRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"domain": "image.caption", "images": [_EXAMPLE_IMAGE]}]})

    images: list[str] = Field(max_length=64)

    @field_validator("images")
    @classmethod
    def _images(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one image (a base64 string, data URL or URL)")
        if any(not item.strip() for item in value):
            raise ValueError("images must not contain empty strings")
        return value


class FilePredictionRequest(_PredictionRequest):
    file_id: str | None = Field(default=None, min_length=1, max_length=128)
    url: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> FilePredictionRequest:
        if (self.file_id is None) == (self.url is None):
            raise ValueError("give exactly one of file_id or url")
        return self


class SchemaRequest(_Checked):
    model_config = ConfigDict(json_schema_extra={"examples": [{"domain": "document.invoice"}]})

    domain: str = Field(min_length=1, max_length=200)
    config: GenerationConfig = Field(default_factory=GenerationConfig)


class Usage(BaseModel):
    """What a prediction consumed. Nothing is billed locally: ``credits_used`` is 0."""

    elements_processed: int = 0
    element_type: ElementType = "image"
    credits_used: int = 0
    duration_seconds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Prediction(BaseModel):
    id: str
    created_at: str
    completed_at: str | None = None
    response: Any = None
    status: JobStatus = "pending"
    usage: Usage = Field(default_factory=Usage)
    domain: str | None = None
    error: str | None = None


class FileObject(BaseModel):
    id: str
    filename: str
    bytes: int
    purpose: str
    created_at: str
    object: Literal["file"] = "file"
    md5: str | None = None
    deleted: bool | None = None  # only in the answer to DELETE


class DomainInfo(BaseModel):
    domain: str
    description: str
    inputs: list[str]


class SchemaInfo(BaseModel):
    domain: str
    description: str | None = None
    schema_version: str
    schema_hash: str
    gql_stmt: str
    json_schema: dict[str, Any]
