"""Turn a :class:`GenerationRequest` into the tensors a model's first step needs.

Chat messages are rendered with the model's own chat template, media parts in the
order the caller gave them. Vision models then go through mlx-vlm's ``prepare_inputs``
(the processor expands image/video placeholders into patch tokens); text models through
the tokenizer. Videos reach natively-video models as decoded frames plus metadata with
their true source indices and fps; other vision models get the frames as images.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from ._mlx import mx
from .chat_format import chat_renderer
from .errors import InvalidRequest, UnsupportedInput
from .loader import LoadedModel
from .processor_fixes import fix_inputs
from .types import ChatMessage, GenerationRequest, ImagePart, TextPart, VideoClip, VideoPart


@dataclass
class PreparedPrompt:
    input_ids: mx.array  # (1, L)
    pixel_values: Any = None
    mask: Any = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.size)


@dataclass
class RenderedPrompt:
    text: str
    images: list[Image.Image]
    videos: list[VideoClip]


def _frames_as_images(message: ChatMessage) -> ChatMessage:
    parts: list[Any] = []
    for part in message.content:
        if isinstance(part, VideoPart):
            clip = part.video
            for t, frame in zip(clip.timestamps, clip.frames):
                parts.append(TextPart(f"<{t:.1f}s>"))
                parts.append(ImagePart(Image.fromarray(frame)))
        else:
            parts.append(part)
    return ChatMessage(role=message.role, content=tuple(parts))


def strip_markers(text: str, markers: tuple[str, ...]) -> str:
    """Remove media placeholder tokens from caller text: typed by a user or echoed in an
    earlier reply, they would be read as images the request does not carry."""
    for marker in markers:
        text = text.replace(marker, "")
    return text


def _template_messages(messages: tuple[ChatMessage, ...], markers: tuple[str, ...]
                       ) -> list[dict[str, Any]]:
    rendered = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": strip_markers(part.text, markers)})
            elif isinstance(part, ImagePart):
                content.append({"type": "image"})
            else:
                content.append({"type": "video"})
        rendered.append(_with_tool_fields({"role": message.role, "content": content}, message))
    return rendered


def _with_tool_fields(rendered: dict[str, Any], message: ChatMessage) -> dict[str, Any]:
    if message.tool_calls:
        rendered["tool_calls"] = [dict(call) for call in message.tool_calls]
    if message.tool_call_id is not None:
        rendered["tool_call_id"] = message.tool_call_id
    return rendered


def _templated(render: Any, tools: tuple[dict[str, Any], ...]) -> str:
    """``render(**kwargs)`` with the request's tools; refused when the template ignores them
    (the model would never learn what it may call)."""
    if not tools:
        return str(render())
    text = str(render(tools=[dict(t) for t in tools]))
    if text == str(render()):
        raise UnsupportedInput("this model's chat template does not show tools to the model: "
                               "it cannot do function calling", param="tools")
    return text


def render_vision_prompt(loaded: LoadedModel, request: GenerationRequest) -> RenderedPrompt:
    """The templated prompt text and the media it refers to, in order."""
    if request.prompt is not None:
        return RenderedPrompt(request.prompt, list(request.images), list(request.videos))
    messages = request.messages
    if not loaded.capabilities.native_video:
        messages = tuple(_frames_as_images(m) for m in messages)
    rendered = _template_messages(messages, loaded.media_markers)
    render = chat_renderer(loaded.processor, loaded.config,
                           typed=loaded.chat_takes_typed_parts)
    text = _templated(lambda **kw: render(rendered, **request.template_kwargs, **kw),
                      request.tools)
    images = [p.image for m in messages for p in m.content if isinstance(p, ImagePart)]
    videos = [p.video for m in messages for p in m.content if isinstance(p, VideoPart)]
    _check_image_count(loaded, len(images))
    return RenderedPrompt(str(text), images, videos)


def _check_image_count(loaded: LoadedModel, count: int) -> None:
    limit = loaded.capabilities.max_images
    if limit is not None and count > limit:
        raise UnsupportedInput(
            f"{loaded.capabilities.served_name} takes at most {limit} image(s) per request "
            f"(a video's frames count as images here); this one has {count}",
            param="messages")


def _smallest_video_side(processor: Any) -> int:
    """The side (pixels) below which the video processor refuses frames: one merged patch
    (28 for Qwen2-VL); 0 when it does not say."""
    video = getattr(processor, "video_processor", None)
    patch, merge = getattr(video, "patch_size", None), getattr(video, "merge_size", None)
    return patch * merge if isinstance(patch, int) and isinstance(merge, int) else 0


def _at_least(clip: VideoClip, side: int) -> VideoClip:
    """``clip`` with frames scaled up (aspect kept) so neither side is below ``side``."""
    height, width = clip.frames.shape[1:3]
    if min(height, width) >= side:
        return clip
    scale = side / min(height, width)
    size = (max(side, round(width * scale)), max(side, round(height * scale)))
    frames = np.stack([np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BICUBIC))
                       for frame in clip.frames])
    return replace(clip, frames=frames)


def _video_inputs(videos: list[VideoClip], smallest_side: int) -> dict[str, Any]:
    from mlx_vlm.utils import VideoMetadata

    if not videos:
        return {}
    videos = [_at_least(clip, smallest_side) for clip in videos]  # else the processor fails
    arrays = [clip.frames.transpose(0, 3, 1, 2) for clip in videos]  # (T, C, H, W)
    metadata = [
        VideoMetadata(
            total_num_frames=clip.total_frames,
            fps=clip.source_fps,
            frames_indices=list(clip.frame_indices),
            width=int(clip.frames.shape[2]),
            height=int(clip.frames.shape[1]),
            duration=clip.total_frames / clip.source_fps if clip.source_fps else None,
        )
        for clip in videos
    ]
    return {"videos": arrays, "video_metadata": metadata}


def prepare_vision_prompt(loaded: LoadedModel, rendered: RenderedPrompt) -> PreparedPrompt:
    from mlx_vlm.utils import prepare_inputs, should_add_special_tokens

    video_kwargs = _video_inputs(rendered.videos, _smallest_video_side(loaded.processor))
    try:
        inputs = prepare_inputs(
            loaded.processor,
            images=rendered.images or None,
            prompts=rendered.text,
            image_token_index=getattr(loaded.model.config, "image_token_index", None),
            add_special_tokens=should_add_special_tokens(loaded.capabilities.model_type,
                                                         loaded.processor),
            **video_kwargs,
        )
    except ValueError as exc:  # the processor refuses the media (e.g. aspect ratio > 200)
        raise InvalidRequest(f"this model's processor cannot take the media: {exc}",
                             param="messages") from exc
    # Evaluated here: the model reads some of them on the host (DeepSeek-VL2's masks).
    inputs = fix_inputs(dict(inputs))
    mx.eval([v for v in inputs.values() if isinstance(v, mx.array)])
    extra = {k: v for k, v in inputs.items()
             if k not in ("input_ids", "pixel_values", "attention_mask")}
    return PreparedPrompt(
        input_ids=inputs["input_ids"],
        pixel_values=inputs.get("pixel_values"),
        mask=inputs.get("attention_mask"),
        model_kwargs=extra,
    )


def render_text_prompt(loaded: LoadedModel, request: GenerationRequest) -> str:
    if request.prompt is not None:
        if request.images or request.videos:
            raise UnsupportedInput(f"{loaded.reference} is a text-only model: it cannot "
                                   "take images or videos", param="messages")
        return request.prompt
    messages = []
    for message in request.messages:
        if any(not isinstance(p, TextPart) for p in message.content):
            raise UnsupportedInput(f"{loaded.reference} is a text-only model: it cannot "
                                   "take images or videos", param="messages")
        text = "".join(p.text for p in message.content if isinstance(p, TextPart))
        messages.append(_with_tool_fields({"role": message.role, "content": text}, message))
    return _templated(lambda **kw: loaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False, **request.template_kwargs,
        **kw), request.tools)


def text_token_ids(loaded: LoadedModel, text: str) -> list[int]:
    """The ids of a rendered text prompt (plain ints: any thread may compute them)."""
    tokenizer = loaded.tokenizer
    bos = getattr(tokenizer, "bos_token", None)
    ids: list[int] = tokenizer.encode(
        text, add_special_tokens=bos is None or not text.startswith(bos))
    return ids


def prepare_text_prompt(loaded: LoadedModel, text: str) -> PreparedPrompt:
    return PreparedPrompt(input_ids=mx.array([text_token_ids(loaded, text)]))


def prepare_prompt(loaded: LoadedModel, request: GenerationRequest) -> PreparedPrompt:
    if request.prompt_ids is not None:
        outside = [t for t in request.prompt_ids if not 0 <= t < loaded.vocab_size]
        if outside:
            raise InvalidRequest(f"the prompt has token id {outside[0]}, outside this "
                                 f"model's vocabulary (ids 0 to {loaded.vocab_size - 1})",
                                 param="prompt")
        return PreparedPrompt(input_ids=mx.array([list(request.prompt_ids)]))
    if loaded.is_vision:
        return prepare_vision_prompt(loaded, render_vision_prompt(loaded, request))
    return prepare_text_prompt(loaded, render_text_prompt(loaded, request))
