"""OpenAPI documentation of the ``/v1/videos`` routes: the create form and the records.

The routes read the form themselves (:mod:`vllm_mlx.videos.request` validates it), so
:class:`VideoCreateForm` only documents it. The records (:class:`VideoObject`,
:class:`VideoList`, :class:`VideoDeleted`) are typed dicts: the types the service and the
store work with, and what the OpenAPI document shows; routes return them as they are.
:data:`CREATE_BODY` is the ``requestBody`` of ``POST /v1/videos`` and ``/v1/videos/sync``
(multipart form, urlencoded form or JSON: the same fields). Ranges are
those :func:`~vllm_mlx.videos.request.parse_request` enforces; rules that join several fields
(``size`` even, 16-4096; ``num_frames`` rounded to ``1 + 4k``) are said in the descriptions.
A record's ``stage`` (:data:`VideoStage`) is an extra beyond OpenAI's video object.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

VideoStatus = Literal["queued", "in_progress", "completed", "failed"]
VideoStage = Literal["queued", "encoding_prompt", "denoising", "decoding", "writing",
                     "completed", "failed", "cancelled"]
"""What a job is doing now: ``status`` in finer steps (an extra field; OpenAI has none).
``encoding_prompt``, ``denoising``, ``decoding`` and ``writing`` (the mp4) are the phases of
an ``in_progress`` job; the others mirror ``status``. ``cancelled`` is for clients: the
server deletes a cancelled job's record."""


class VideoCreateForm(BaseModel):
    """The fields of ``POST /v1/videos``; unknown fields are ignored."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, description="What to generate (required, not blank)")
    model: str | None = None
    size: str | None = Field(default=None, pattern=r"^\d+x\d+$",
                             description="WIDTHxHEIGHT, each even and 16-4096; "
                                         "overrides width and height")
    width: int | None = Field(default=None, ge=1, le=100_000)
    height: int | None = Field(default=None, ge=1, le=100_000)
    seconds: str | None = Field(default=None, pattern=r"^[1-9]\d*$",
                                description="Duration, a positive whole number")
    num_frames: int | None = Field(default=None, ge=1, le=10_000,
                                   description="Rounded to 1 + 4k frames")
    fps: int | None = Field(default=None, ge=1, le=240)
    num_inference_steps: int | None = Field(default=None, ge=1, le=200)
    guidance_scale: float | None = Field(default=None, ge=0, le=20)
    guidance_scale_2: float | None = Field(default=None, ge=0, le=20, description="Ignored")
    true_cfg_scale: float | None = Field(default=None, ge=0, le=20, description="Ignored")
    boundary_ratio: float | None = Field(default=None, ge=0, le=1, description="Ignored")
    flow_shift: float | None = Field(default=None, ge=0.01, le=100)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    negative_prompt: str | None = None
    enable_frame_interpolation: bool | None = None
    frame_interpolation_exp: int | None = Field(default=None, ge=1, le=4)
    frame_interpolation_scale: float | None = Field(default=None, gt=0, le=16,
                                                    description="Ignored")
    frame_interpolation_model_path: str | None = Field(default=None, description="Ignored")
    image_reference: dict[str, str] | str | None = Field(
        default=None, description='{"image_url": URL} or {"file_id": ID} (JSON text in a form)')
    input_reference: str | None = Field(
        default=None, description="A reference image: an uploaded file, or a URL as text")
    extra_params: dict[str, Any] | str | None = Field(
        default=None, description="scheduler (unipc / euler), max_sequence_length")
    lora: dict[str, Any] | str | None = Field(default=None, description="Refused when set")
    user: str | None = None


_JSON_TEXT_FIELDS = ("image_reference", "extra_params", "lora")  # JSON text in a form


def _create_body() -> dict[str, Any]:
    schema = VideoCreateForm.model_json_schema()
    form_fields = dict(schema["properties"])
    for name in _JSON_TEXT_FIELDS:
        form_fields[name] = {"type": "string", "description": form_fields[name]["description"]}
    form = {**schema, "properties": form_fields}
    multipart = {**form, "properties": {**form_fields, "input_reference": {
        "type": "string", "format": "binary", "description": "A reference image file"}}}
    return {"required": True, "content": {
        "multipart/form-data": {"schema": multipart},
        "application/x-www-form-urlencoded": {"schema": form},
        "application/json": {"schema": schema},
    }}


CREATE_BODY = {"requestBody": _create_body()}


class VideoError(TypedDict):
    code: str
    message: str


@with_config(ConfigDict(extra="allow"))
class VideoObject(TypedDict):
    """A video job record, as the service keeps and returns it."""

    id: str
    object: Literal["video"]
    status: VideoStatus
    stage: VideoStage
    progress: Annotated[int, Field(ge=0, le=100)]
    created_at: int
    completed_at: int | None
    expires_at: int | None
    model: str
    prompt: str
    size: str
    seconds: str
    quality: str
    remixed_from_video_id: str | None
    error: VideoError | None
    inference_time_s: float | None
    file_name: str | None
    media_type: str
    user: str | None
    settings: dict[str, object]
    notes: list[str]


class VideoList(TypedDict):
    object: Literal["list"]
    data: list[VideoObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(TypedDict):
    id: str
    deleted: Literal[True]
    object: Literal["video.deleted"]


MP4_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "The mp4 file",
    "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
}}
