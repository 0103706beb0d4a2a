"""One window of frames -> one engine request, and the reply sent back for it.

Contract: :func:`decode_frames` gives a window's images: those decoded on arrival, the
others decoded now with :func:`vllm_mlx.media.decode_image` (blocking; run it off the
event loop); a frame that fails is left out and reported. Given a ``fit`` (see
:func:`frame_sizes`), each image is also brought to the size the model's processor would
resize it to (:mod:`vllm_mlx.stream.presize`: the model input stays bit-identical), from
its JPEG again when it was presized for another window shape. :func:`ready_window` is the
window without any work when every frame already has its image at the size wanted.
:func:`arrival_layout` is the shape a full window will take, so frames can be presized
as they arrive; :func:`window_layout` the shape of an actual window. :func:`build_request` makes
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

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
from ..errors import APIError, to_api_error
from ..media import MediaError, MediaPolicy, decode_image
from .config import StreamConfig
from .presize import FrameSizer, Kind, Size, presize
from .protocol import Frame

Fit = Callable[[Sequence[Frame]], list[Size]]  # the image size wanted for each frame


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


def decode_frames(frames: Sequence[Frame], policy: MediaPolicy, fit: Fit | None = None
                  ) -> DecodedWindow:
    """Decode every frame (then fit it, if ``fit``); failures are dropped and returned
    as errors."""
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
    if fit is not None and kept:  # after the failures: the window's shape is now final
        images = [_fitted(frame, image, size, policy)
                  for frame, image, size in zip(kept, images, fit(kept))]
    return DecodedWindow(tuple(kept), tuple(images), tuple(errors))


def _fitted(frame: Frame, image: Image.Image, size: Size, policy: MediaPolicy
            ) -> Image.Image:
    if image.size != (frame.width, frame.height) and image.size != size:
        image = decode_image(frame.jpeg, policy=policy)  # presized for another shape
    return presize(image, size)


def ready_window(frames: Sequence[Frame], config: StreamConfig, traits: ModelTraits,
                 sizer: FrameSizer | None) -> DecodedWindow | None:
    """The window as it is, when every frame already has its image at the size wanted
    (and those sizes are known without running the processor); else None."""
    if any(f.image is None for f in frames):
        return None
    if sizer is not None:
        kind, count = window_layout(frames, config, traits)
        if not all(sizer.known(kind, count, f.width, f.height) for f in frames):
            return None
    sizes = frame_sizes(frames, config, traits, sizer)
    images = [f.image for f in frames if f.image is not None]
    if any(image.size != size for image, size in zip(images, sizes)):
        return None
    return DecodedWindow(tuple(frames), tuple(images))


def arrival_layout(config: StreamConfig, traits: ModelTraits) -> tuple[Kind, int]:
    """How a full window of same-size frames goes to the model: ("video", clip frames)
    or ("image", 1)."""
    if config.mode == "images" or (config.mode == "auto" and (
            not traits.native_video or config.window < traits.video_min_frames)):
        return "image", 1
    return "video", max(config.window, traits.video_min_frames)


def window_layout(frames: Sequence[Frame], config: StreamConfig, traits: ModelTraits
                  ) -> tuple[Kind, int]:
    """How these frames go to the model (decided on their sizes as sent)."""
    if not _use_video([(f.width, f.height) for f in frames], config, traits):
        return "image", 1
    return "video", max(len(frames), traits.video_min_frames)


def frame_sizes(frames: Sequence[Frame], config: StreamConfig, traits: ModelTraits,
                sizer: FrameSizer | None) -> list[Size]:
    """The image size each frame should have for the model: the processor's own, when
    ``sizer`` knows it, else the frame's size as sent. A clip whose frames differ in
    size keeps them as sent (the clip resizes them to the newest one's size itself)."""
    sent = [(f.width, f.height) for f in frames]
    kind, count = window_layout(frames, config, traits)
    if sizer is None or (kind == "video" and len(set(sent)) > 1):
        return sent
    return [sizer.target(kind, count, *size) or size for size in sent]


def _use_video(sizes: Sequence[Size], config: StreamConfig, traits: ModelTraits) -> bool:
    if config.mode != "auto":
        return config.mode == "video"
    same_size = len(set(sizes)) == 1
    return traits.native_video and same_size and len(sizes) >= traits.video_min_frames


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
    if _use_video([(f.width, f.height) for f in window.frames], config, traits):
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
