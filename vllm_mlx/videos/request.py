"""A video job's request, parsed and range-checked: the one type from the route to the plan.

Contract: :func:`parse_request` takes the fields of ``POST /v1/videos`` (and ``/sync``) as
they arrived - a multipart or urlencoded form's text fields, or a JSON object's values
(numbers, booleans, objects: the same rules, read as their text) - plus the bytes of an
uploaded ``input_reference`` file, and returns a :class:`VideoRequest`, or raises
:class:`~vllm_mlx.errors.APIError` (400, ``param`` = the field) with a message a client can
act on. Rules (the seed and ``video-jobs.md``):

- ``prompt`` is required and non-blank; ``size`` is ``WIDTHxHEIGHT`` and overrides
  ``width`` / ``height``; ``seconds`` is a positive whole number; ``num_inference_steps``
  1-200; ``guidance_scale``, ``guidance_scale_2``, ``true_cfg_scale`` 0-20;
  ``boundary_ratio`` 0-1; ``flow_shift`` 0.01-100; ``frame_interpolation_exp`` 1-4.
- ``image_reference`` is a JSON object ``{"image_url": ...}`` or ``{"file_id": ...}`` (also
  accepted as the OpenAI SDK's ``input_reference[image_url]`` / ``input_reference[file_id]``
  fields, or an ``input_reference`` text field holding a URL); it may not be combined with an
  uploaded ``input_reference`` file (checked when the reference is loaded).
- ``lora`` (a non-empty JSON object) is rejected: this server has no LoRA support.
  ``guidance_scale_2`` / ``boundary_ratio`` (Wan2.2's two-expert split), ``true_cfg_scale``,
  ``frame_interpolation_scale`` / ``frame_interpolation_model_path`` (RIFE settings) are
  validated, then accepted and reported as ignored in ``notes``. ``extra_params`` may set
  ``scheduler`` (``unipc`` / ``euler``) and ``max_sequence_length``; other keys are ignored
  and reported. Fields the form does not know are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import APIError

FieldValue = str | int | float | bool | dict[str, Any] | list[Any] | None

SIDE_MULTIPLE = 16  # generated sides are multiples of this, so it is also the smallest
MAX_SIDE = 4096

SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
SECONDS_RE = re.compile(r"^[1-9]\d*$")
MAX_STEPS = 200
MAX_INTERPOLATION_EXP = 4
MIN_FLOW_SHIFT = 0.01  # smaller shifts collapse the sigma schedule (NaN frames, division by 0)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_EXTRA_KEYS = ("scheduler", "max_sequence_length")


def _bad(param: str, message: str) -> APIError:
    return APIError(400, message, param=param, code="invalid_value")


@dataclass(frozen=True)
class VideoRequest:
    """What a client asked for, typed; ``None`` = the model's default."""

    prompt: str
    model: str | None = None
    seconds: int | None = None
    width: int | None = None
    height: int | None = None
    num_frames: int | None = None
    fps: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    flow_shift: float | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    interpolation_exp: int = 0  # 0: no frame interpolation
    scheduler: str | None = None
    max_sequence_length: int | None = None
    user: str | None = None
    image_reference: dict[str, str] | None = None
    upload: bytes | None = field(default=None, repr=False)  # an uploaded input_reference
    notes: tuple[str, ...] = field(default_factory=tuple)


def _as_text(value: FieldValue) -> str:
    """A JSON value as a form would carry it (objects as JSON text, booleans lower case)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


class _Fields:
    """Typed access to the fields' text; blank values count as absent."""

    def __init__(self, fields: Mapping[str, FieldValue]) -> None:
        self.raw = {k: _as_text(v) for k, v in fields.items() if v is not None}
        self.fields = {k: v.strip() for k, v in self.raw.items()}

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if value else None

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise _bad(name, f"{name} must be an integer, got {value!r}") from None
        if not low <= number <= high:
            raise _bad(name, f"{name} must be between {low} and {high}, got {number}")
        return number

    def number(self, name: str, low: float, high: float, low_open: bool = False) -> float | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise _bad(name, f"{name} must be a number, got {value!r}") from None
        if number != number or number > high or number < low or (low_open and number == low):
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise _bad(name, f"{name} must be {bound} and <= {high:g}, got {value}")
        return number

    def boolean(self, name: str) -> bool:
        value = (self.text(name) or "").lower()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        raise _bad(name, f"{name} must be true or false, got {value!r}")

    def json_object(self, name: str) -> dict[str, Any] | None:
        value = self.text(name)
        if value is None or value == "null":
            return None
        try:
            data = json.loads(value)
        except ValueError:
            raise _bad(name, f"{name} must be a JSON object, got invalid JSON") from None
        if data is not None and not isinstance(data, dict):
            raise _bad(name, f"{name} must be a JSON object, got {type(data).__name__}")
        return data or None


def _size(f: _Fields) -> tuple[int | None, int | None]:
    size = f.text("size")
    if size is None:
        return (f.integer("width", SIDE_MULTIPLE, MAX_SIDE),
                f.integer("height", SIDE_MULTIPLE, MAX_SIDE))
    match = SIZE_RE.match(size)
    if match is None:
        raise _bad("size", f"size must look like WIDTHxHEIGHT, e.g. 832x480; got {size!r}")
    return int(match.group(1)), int(match.group(2))


def _seconds(f: _Fields) -> int | None:
    value = f.text("seconds")
    if value is None:
        return None
    if not SECONDS_RE.match(value):
        raise _bad("seconds", f"seconds must be a positive whole number, e.g. '4'; got {value!r}")
    return int(value)


def _image_reference(f: _Fields) -> dict[str, str] | None:
    ref = f.json_object("image_reference")
    sdk: dict[str, Any] = {}
    for key in ("image_url", "file_id"):
        value = f.text(f"input_reference[{key}]")
        if value:
            sdk[key] = value
    text = f.text("input_reference")
    if text:
        sdk.setdefault("image_url", text)
    if ref is not None and sdk:
        raise _bad("image_reference", "give either image_reference or input_reference, not both")
    ref = ref if ref is not None else (dict(sdk) or None)
    if ref is None:
        return None
    keys = [k for k in ("image_url", "file_id") if isinstance(ref.get(k), str) and ref[k]]
    if len(keys) != 1 or set(ref) - {"image_url", "file_id"}:
        raise _bad("image_reference",
                   'image_reference must be {"image_url": URL} or {"file_id": ID}')
    return {keys[0]: str(ref[keys[0]])}


def _ignored(f: _Fields) -> list[str]:
    notes = []
    for name in ("guidance_scale_2", "true_cfg_scale"):
        if f.number(name, 0.0, 20.0) is not None:
            notes.append(f"{name} ignored: Wan2.1 uses one classifier-free guidance scale")
    if f.number("boundary_ratio", 0.0, 1.0) is not None:
        notes.append("boundary_ratio ignored: Wan2.1 has a single denoising expert")
    if f.number("frame_interpolation_scale", 0.0, 16.0, low_open=True) is not None:
        notes.append("frame_interpolation_scale ignored: interpolation is not RIFE here")
    if f.text("frame_interpolation_model_path") is not None:
        notes.append("frame_interpolation_model_path ignored: interpolation is ffmpeg-based here")
    if f.json_object("lora") is not None:
        raise _bad("lora", "lora is not supported: this server cannot apply LoRA adapters")
    return notes


def _extra(f: _Fields, notes: list[str]) -> tuple[str | None, int | None]:
    extra = f.json_object("extra_params") or {}
    unknown = sorted(set(extra) - set(_EXTRA_KEYS))
    if unknown:
        notes.append(f"extra_params keys ignored: {', '.join(unknown)}")
    scheduler = extra.get("scheduler")
    if scheduler is not None and not isinstance(scheduler, str):
        raise _bad("extra_params", "extra_params.scheduler must be a string")
    length = extra.get("max_sequence_length")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)):
        raise _bad("extra_params", "extra_params.max_sequence_length must be an integer")
    return scheduler, length


def _interpolation(f: _Fields) -> int:
    exp = f.integer("frame_interpolation_exp", 1, MAX_INTERPOLATION_EXP)
    return (exp or 1) if f.boolean("enable_frame_interpolation") else 0


def parse_request(fields: Mapping[str, FieldValue], upload: bytes | None = None
                  ) -> VideoRequest:
    """Validate the request's fields; ``upload``: an uploaded ``input_reference`` file."""
    f = _Fields(fields)
    prompt = f.text("prompt")
    if prompt is None:
        raise APIError(400, "prompt is required: describe the video to generate",
                       param="prompt", code="missing_required_parameter")
    width, height = _size(f)
    notes = _ignored(f)
    scheduler, max_length = _extra(f, notes)
    return VideoRequest(
        prompt=prompt,
        model=f.text("model"),
        seconds=_seconds(f),
        width=width,
        height=height,
        num_frames=f.integer("num_frames", 1, 10_000),
        fps=f.integer("fps", 1, 240),
        num_inference_steps=f.integer("num_inference_steps", 1, MAX_STEPS),
        guidance_scale=f.number("guidance_scale", 0.0, 20.0),
        flow_shift=f.number("flow_shift", MIN_FLOW_SHIFT, 100.0),
        seed=f.integer("seed", 0, 2**63 - 1),
        negative_prompt=f.raw.get("negative_prompt") or None,
        interpolation_exp=_interpolation(f),
        scheduler=scheduler,
        max_sequence_length=max_length,
        user=f.text("user"),
        image_reference=_image_reference(f),
        upload=upload,
        notes=tuple(notes),
    )
