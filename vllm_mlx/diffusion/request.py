"""What a caller asks the video pipeline for, what it gets back, and how a request resolves.

Contract:
- ``VideoGenRequest``: every field but ``prompt`` may be ``None`` = the model's default
  (``VideoDefaults``, from the folder's optional ``video_defaults.json``, else Wan2.1's
  832x480, 81 frames, 16 fps, 50 steps, guidance 5.0, 512 text tokens).
- ``resolve(request, defaults, scheduler_default, shift_default)`` validates and fills in a
  ``ResolvedRequest``; bad values raise ``ValueError`` with a message fit for an API client.
  ``num_frames`` is rounded to the nearest ``1 + 4k`` (halves round up), with a note.
- ``VideoGenResult``: uint8 frames ``(F, H, W, 3)``, fps, the seed used, the effective
  settings, timings in seconds and human-readable notes.
- ``Cancelled`` is raised by ``WanPipeline.generate`` when ``should_cancel()`` turns true.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import read_json
from .schedulers import SCHEDULERS

SIZE_MULTIPLE = 16
MAX_SEED = 2**63 - 1
MAX_FRAMES = 10_000


class Cancelled(Exception):
    """The caller's ``should_cancel()`` returned true; no result was produced."""


@dataclass(frozen=True)
class VideoDefaults:
    """Per-model defaults (``video_defaults.json`` overrides any of them)."""

    width: int = 832
    height: int = 480
    num_frames: int = 81
    fps: int = 16
    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    max_sequence_length: int = 512
    negative_prompt: str = ""

    @classmethod
    def from_folder(cls, folder: Path) -> VideoDefaults:
        path = Path(folder) / "video_defaults.json"
        if not path.is_file():
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in read_json(path).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class VideoGenRequest:
    """One text-to-video (or image-to-video, with ``image``) generation."""

    prompt: str
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    num_frames: int | None = None
    fps: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    flow_shift: float | None = None
    seed: int | None = None
    scheduler: str | None = None  # "unipc" | "euler"
    image: Any | None = None  # PIL.Image.Image
    max_sequence_length: int | None = None


@dataclass(frozen=True)
class ResolvedRequest:
    prompt: str
    negative_prompt: str
    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    flow_shift: float
    seed: int
    scheduler: str
    image: Any | None
    max_sequence_length: int
    notes: tuple[str, ...] = ()

    @property
    def use_cfg(self) -> bool:
        return self.guidance_scale > 1.0


@dataclass
class VideoGenResult:
    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: int
    seed: int
    width: int
    height: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    flow_shift: float
    scheduler: str
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def round_frames(requested: int, factor: int = 4) -> int:
    """Nearest ``1 + factor * k`` (``k >= 0``; halves round up)."""
    if requested < 1:
        raise ValueError(f"num_frames must be >= 1, got {requested}")
    k = (2 * (requested - 1) + factor) // (2 * factor)
    return 1 + factor * k


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def _size(name: str, value: Any) -> int:
    value = _int(name, value, 1, 8192)
    if value % SIZE_MULTIPLE:
        raise ValueError(f"{name} must be a multiple of {SIZE_MULTIPLE}, got {value}")
    return value


def _frames(requested: Any, factor: int, notes: list[str]) -> int:
    requested = _int("num_frames", requested, 1, MAX_FRAMES)
    frames = round_frames(requested, factor)
    if frames > MAX_FRAMES:  # rounding up would leave the range: round down instead
        frames -= factor
    if frames != requested:
        notes.append(
            f"num_frames {requested} rounded to {frames}: the causal VAE makes 1 + {factor}k frames"
        )
    return frames


def _guidance(value: Any) -> float:
    value = float(value)
    if not 0.0 <= value <= 50.0:
        raise ValueError(f"guidance_scale must be between 0 and 50, got {value}")
    return value


def _shift(value: Any) -> float:
    value = float(value)
    if not 0.0 < value <= 100.0:
        raise ValueError(f"flow_shift must be > 0 and <= 100, got {value}")
    return value


def _seed(value: Any) -> int:
    if value is None:
        return secrets.randbelow(2**32)
    return _int("seed", value, 0, MAX_SEED)


def resolve(
    request: VideoGenRequest,
    defaults: VideoDefaults,
    scheduler_default: str,
    shift_default: float,
    temporal_factor: int = 4,
) -> ResolvedRequest:
    """Validate ``request`` and fill in defaults (``ValueError`` on bad values)."""
    if not isinstance(request.prompt, str) or not request.prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    notes: list[str] = []

    def pick(name: str) -> Any:
        value = getattr(request, name)
        return getattr(defaults, name) if value is None else value

    scheduler = (request.scheduler or scheduler_default).lower()
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    return ResolvedRequest(
        prompt=request.prompt,
        negative_prompt=pick("negative_prompt") or "",
        width=_size("width", pick("width")),
        height=_size("height", pick("height")),
        num_frames=_frames(pick("num_frames"), temporal_factor, notes),
        fps=_int("fps", pick("fps"), 1, 240),
        num_inference_steps=_int("num_inference_steps", pick("num_inference_steps"), 1, 1000),
        guidance_scale=_guidance(pick("guidance_scale")),
        flow_shift=_shift(shift_default if request.flow_shift is None else request.flow_shift),
        seed=_seed(request.seed),
        scheduler=scheduler,
        image=request.image,
        max_sequence_length=_int("max_sequence_length", pick("max_sequence_length"), 1, 4096),
        notes=tuple(notes),
    )
