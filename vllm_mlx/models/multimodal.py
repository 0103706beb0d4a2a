"""The Python API: ``MLXMultimodalLM`` for scripts and notebooks.

    mllm = MLXMultimodalLM("mlx-community/Qwen3-VL-4B-Instruct-3bit")  # or "tiny:qwen2_vl"
    mllm.load()
    mllm.describe_image("photo.jpg")
    mllm.describe_video("video.mp4", fps=2.0)
    mllm.generate(prompt="Compare these images", images=["img1.jpg", "img2.jpg"])

The caller is the machine's own user, so local paths anywhere and private URLs are
allowed (unlike the server's defaults). Everything runs through the same engine and
media code as the server, so outputs match it token for token.

``close()`` (or a ``with`` block) frees the model at once; without it the engine is shut
down at interpreter exit, so a script ends cleanly (status 0) even with a generation still
running in another thread or a streaming iterator left unfinished.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..blas import activate_fast_blas
from ..content import (
    Resolver,
    VideoSampling,
    parse_messages,
    resolve_messages_sync,
)
from ..engine.detect import ModelKind
from ..media import MediaPolicy

DEFAULT_IMAGE_PROMPT = "Describe this image."
DEFAULT_VIDEO_PROMPT = "Describe what happens in this video."
MediaSource = str | Path | Any  # a path, URL, data URL, or a PIL image


PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})  # PNG stores these


def _as_url(source: MediaSource) -> str:
    """A content-part URL for one source: PIL images become lossless PNG data URLs."""
    if isinstance(source, (str, Path)):
        return str(source)
    if hasattr(source, "save") and hasattr(source, "mode"):  # a PIL image
        if source.mode not in PNG_MODES:  # e.g. float "F", "CMYK": the model sees RGB anyway
            source = source.convert("RGB")
        buffer = io.BytesIO()
        source.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    raise TypeError(f"expected a path, URL, data URL or PIL image, got {type(source).__name__}")


def _as_list(sources: MediaSource | Sequence[MediaSource] | None) -> list[str]:
    """One source or several (a lone string is one path, not a sequence of letters)."""
    if sources is None:
        return []
    if isinstance(sources, (str, Path)) or hasattr(sources, "save"):
        return [_as_url(sources)]
    return [_as_url(s) for s in sources]


class MLXMultimodalLM:
    """A loaded text or vision-language model with a small, blocking API."""

    def __init__(self, model: str, *, force_kind: ModelKind | None = None,
                 fast_blas: bool = True, max_tokens: int = 256) -> None:
        self.model_name = str(model)
        self.force_kind = force_kind
        self.fast_blas = fast_blas
        self.max_tokens = max_tokens
        self._engine: Any = None

    def load(self) -> MLXMultimodalLM:
        activate_fast_blas(self.fast_blas)
        from ..engine import Engine, LoadOptions

        if self._engine is None:
            self._engine = Engine.start(self.model_name, LoadOptions(force_kind=self.force_kind))
        return self

    @property
    def engine(self) -> Any:
        if self._engine is None:
            raise RuntimeError("call load() first")
        return self._engine

    @property
    def is_vision(self) -> bool:
        return bool(self.engine.model.is_vision)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    def __enter__(self) -> MLXMultimodalLM:
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _resolver(self, fps: float, max_frames: int) -> Resolver:
        policy = MediaPolicy.trusted()  # the caller's own files; relative to the cwd
        min_frames = int(self.engine.model.video_min_frames)
        return Resolver(policy, VideoSampling(fps, max_frames, min(min_frames, max_frames)))

    @staticmethod
    def _user_message(prompt: str, images: MediaSource | Sequence[MediaSource],
                      videos: MediaSource | Sequence[MediaSource]) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": url}} for url in _as_list(images)
        ]
        parts += [{"type": "video", "video": url} for url in _as_list(videos)]
        parts.append({"type": "text", "text": prompt})
        return {"role": "user", "content": parts}

    def _request(self, messages: list[dict[str, Any]], fps: float, max_frames: int,
                 **sampling: Any) -> Any:
        from ..engine import GenerationRequest, SamplingParams

        sampling.setdefault("max_tokens", self.max_tokens)
        resolved = resolve_messages_sync(parse_messages(messages),
                                         self._resolver(fps, max_frames))
        return GenerationRequest(messages=resolved, sampling=SamplingParams(**sampling))

    def chat(self, messages: list[dict[str, Any]], *, video_fps: float = 2.0,
             video_max_frames: int = 64, **sampling: Any) -> Any:
        """OpenAI-style messages in, a :class:`GenerationResult` out."""
        return self.engine.complete_sync(
            self._request(messages, video_fps, video_max_frames, **sampling))

    def stream_chat(self, messages: list[dict[str, Any]], *, video_fps: float = 2.0,
                    video_max_frames: int = 64, **sampling: Any) -> Iterator[str]:
        request = self._request(messages, video_fps, video_max_frames, **sampling)
        for chunk in self.engine.generate_sync(request):
            if chunk.text:
                yield chunk.text

    def generate(self, prompt: str, images: MediaSource | Sequence[MediaSource] = (),
                 videos: MediaSource | Sequence[MediaSource] = (), *, video_fps: float = 2.0,
                 video_max_frames: int = 64, **sampling: Any) -> Any:
        """One user turn with optional images and videos; returns a GenerationResult."""
        message = self._user_message(prompt, images, videos)
        return self.chat([message], video_fps=video_fps, video_max_frames=video_max_frames,
                         **sampling)

    def stream_generate(self, prompt: str, images: MediaSource | Sequence[MediaSource] = (),
                        videos: MediaSource | Sequence[MediaSource] = (), *, video_fps: float = 2.0,
                        video_max_frames: int = 64, **sampling: Any) -> Iterator[str]:
        message = self._user_message(prompt, images, videos)
        yield from self.stream_chat([message], video_fps=video_fps,
                                    video_max_frames=video_max_frames, **sampling)

    def describe_image(self, image: MediaSource, prompt: str = DEFAULT_IMAGE_PROMPT,
                       **sampling: Any) -> str:
        return str(self.generate(prompt, images=[image], **sampling).text)

    def describe_video(self, video: MediaSource, prompt: str = DEFAULT_VIDEO_PROMPT, *,
                       fps: float = 2.0, max_frames: int = 64, **sampling: Any) -> str:
        result = self.generate(prompt, videos=[video], video_fps=fps,
                               video_max_frames=max_frames, **sampling)
        return str(result.text)
