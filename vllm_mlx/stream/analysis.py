"""One window of frames -> one engine request, and the reply sent back for it.

Contract: :func:`decode_frames` gives a window's images: those decoded on arrival, the
others decoded now with :func:`vllm_mlx.media.decode_image` (blocking; run it off the
event loop); a frame that fails is left out and reported. :func:`build_request` makes
the engine request: a single user message with the frames, then the prompt text. The
frames go as one :class:`~vllm_mlx.engine.types.VideoPart` (a short clip whose times are the frames'
timestamps relative to the first) when the model takes video natively and there are at
least ``video_min_frames`` frames of one size, or when the config asks for ``video``
(frames are then resized to the newest one's size and padded to the minimum count); as
one :class:`~vllm_mlx.engine.types.ImagePart` per frame otherwise. Sampling is the
connection's (seed defaults: 48 tokens, temperature 0.7, top_p 0.95).
:func:`reply_message` is the seed's ``{"vlm_reply": ...}`` plus extra fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..api.errors import APIError, to_api_error
from ..engine.types import (
    ChatMessage,
    ContentPart,
    GenerationRequest,
    GenerationResult,
    ImagePart,
    SamplingParams,
    TextPart,
    VideoClip,
    VideoPart,
)
from ..media import MediaError, MediaPolicy, decode_image
from .config import StreamConfig
from .protocol import Frame


@dataclass(frozen=True)
class ModelTraits:
    """What the request builder needs to know about the served model."""

    native_video: bool
    video_min_frames: int = 1


@dataclass(frozen=True)
class DecodedWindow:
    frames: tuple[Frame, ...]
    images: tuple[Image.Image, ...]
    errors: tuple[APIError, ...] = ()


def decode_frames(frames: Sequence[Frame], policy: MediaPolicy) -> DecodedWindow:
    """Decode every frame; failures are dropped and returned as errors."""
    kept: list[Frame] = []
    images: list[Image.Image] = []
    errors: list[APIError] = []
    for frame in frames:
        try:
            images.append(frame.image or decode_image(frame.jpeg, policy=policy))
            kept.append(frame)
        except MediaError as exc:
            error = to_api_error(exc)
            error.param = "frame"
            errors.append(error)
    return DecodedWindow(tuple(kept), tuple(images), tuple(errors))


def _use_video(window: DecodedWindow, config: StreamConfig, traits: ModelTraits) -> bool:
    if config.mode != "auto":
        return config.mode == "video"
    same_size = len({image.size for image in window.images}) == 1
    return traits.native_video and same_size and len(window.images) >= traits.video_min_frames


def _clip(window: DecodedWindow, min_frames: int) -> VideoClip:
    size = window.images[-1].size
    arrays = [np.asarray(img if img.size == size else img.resize(size, Image.Resampling.BILINEAR))
              for img in window.images]
    stamps = [f.timestamp for f in window.frames]
    while len(arrays) < min_frames:  # e.g. a temporal patch of 2 from a single frame
        arrays.append(arrays[-1])
        stamps.append(stamps[-1])
    span = stamps[-1] - stamps[0]
    fps = (len(arrays) - 1) / span if span > 1e-6 else 1.0
    return VideoClip(
        frames=np.stack(arrays), timestamps=tuple(t - stamps[0] for t in stamps),
        frame_indices=tuple(range(len(arrays))), source_fps=fps,
        total_frames=len(arrays), sampled_fps=fps,
    )


def build_request(window: DecodedWindow, config: StreamConfig, traits: ModelTraits,
                  request_id: str = "") -> GenerationRequest:
    parts: tuple[ContentPart, ...]
    if _use_video(window, config, traits):
        parts = (VideoPart(_clip(window, traits.video_min_frames)),)
    else:
        parts = tuple(ImagePart(image) for image in window.images)
    sampling = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature,
                              top_p=config.top_p, seed=config.seed, ignore_eos=config.ignore_eos)
    message = ChatMessage(role="user", content=(*parts, TextPart(config.prompt)))
    # A window's frames never recur, so its KV would only push useful chat prefixes out.
    return GenerationRequest(sampling=sampling, messages=(message,), request_id=request_id,
                             cache_prefix=False)


def reply_message(result: GenerationResult, frames: Sequence[Frame], *, latency_s: float,
                  generation_s: float, as_video: bool, received: int) -> dict[str, Any]:
    """``{"vlm_reply": text}`` plus extra fields: the frames' timestamps, timings (server
    clock: ``latency_s`` from the window's last frame arriving to this reply,
    ``generation_s`` in the engine), usage, and ``received`` (frames accepted on this
    connection so far)."""
    return {
        "vlm_reply": result.text,
        "timestamps": [f.timestamp for f in frames],
        "frames": len(frames),
        "as_video": as_video,
        "latency_s": round(latency_s, 4),
        "generation_s": round(generation_s, 4),
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "received": received,
    }
