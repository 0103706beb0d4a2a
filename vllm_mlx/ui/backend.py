"""What the chat UI needs from a model: the :class:`ChatBackend` protocol.

Contract:

- ``info`` describes the model once, at start (name, whether it sees images / video,
  random weights, where it runs); the UI shows it.
- ``stream(conversation, options)`` is an async iterator of text pieces for a reply to
  the conversation's last user turn, then, when the backend knows it, one :class:`Usage`
  (the reply's token count) last. Closing it early, or cancelling the task that awaits it
  (the Stop button, a closed tab), cancels the generation. Failures the user should read
  raise :class:`BackendError`.
- ``video_jobs`` is a :class:`~vllm_mlx.ui.videos.VideoJobs` client when the backend has a
  video generation model (the Videos tab is built only then), else ``None``.
- ``close()`` releases the engine or HTTP client.
- A backend on a server that serves several models is also a :class:`ModelMenu`:
  ``model_options()`` lists them as the server sees them now (:class:`ModelOption`), and
  ``GenerationOptions.model`` picks the one a reply comes from (empty: ``info.model``).

Two implementations: :class:`~vllm_mlx.ui.local.InProcessBackend` (an
:class:`~vllm_mlx.engine.Engine` in this process) and
:class:`~vllm_mlx.ui.remote.RemoteBackend` (a running ``vllm-mlx serve`` through the
OpenAI SDK).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .conversation import Conversation
from .errors import BackendError

if TYPE_CHECKING:
    from .videos import VideoJobs

__all__ = ["BackendError", "BackendInfo", "ChatBackend", "GenerationOptions", "ModelMenu",
           "ModelOption", "Usage"]


@dataclass(frozen=True)
class Usage:
    """The last item of a reply stream: how many tokens the reply took."""

    completion_tokens: int


@dataclass(frozen=True)
class BackendInfo:
    model: str
    vision: bool
    video: bool  # accepts video input
    location: str  # "in-process" or the server URL
    random_weights: bool = False
    # False for a server's model that is not loaded: its card cannot tell video yet,
    # nor, when the server could not read its config, whether it is a vision model
    video_known: bool = True
    vision_known: bool = True

    @property
    def takes_video(self) -> bool:
        """Whether video attachments go through (unknown support: the server decides)."""
        return self.video or (self.vision and not self.video_known)

    def describe(self) -> str:
        """One Markdown line for the page header."""
        if not self.vision_known:
            sees = "what it takes is known once it is loaded"
        elif self.vision and not self.video_known:
            sees = "sees images (video: known once it is loaded)"
        elif self.vision:
            sees = "sees images and video" if self.video else "sees images (no video)"
        else:
            sees = "text only: images and videos are refused"
        line = f"**Model:** `{self.model}` ({self.location}), {sees}"
        if self.random_weights:
            line += ". *Random weights: a test fixture, its replies are noise.*"
        return line


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 512
    temperature: float = 0.7
    video_fps: float = 2.0
    video_max_frames: int = 32
    system_prompt: str = ""
    model: str = ""  # a model of the server's menu; empty: the backend's own

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.video_fps <= 0 or self.video_max_frames < 1:
            raise ValueError("video fps must be > 0 and max frames at least 1")


STATE_WORDS = {"loaded": "loaded", "loading": "loading", "available": "not loaded",
               "failed": "failed to load"}


@dataclass(frozen=True)
class ModelOption:
    """One model of a server's menu, as its ``/v1/models`` card showed it last."""

    info: BackendInfo
    state: str  # loaded, loading, available or failed
    default: bool = False

    @property
    def id(self) -> str:
        return self.info.model

    def label(self) -> str:
        """The dropdown entry, e.g. ``vl (vision, not loaded)``."""
        kind = ["vision" if self.info.vision else "text"] if self.info.vision_known else []
        words = [*kind, STATE_WORDS.get(self.state, self.state)]
        return f"{self.id} ({', '.join(words + ['default'] * self.default)})"


@runtime_checkable
class ModelMenu(Protocol):
    def model_options(self) -> list[ModelOption]:
        """Every model the server serves, the default first (blocking; may raise
        :class:`BackendError`)."""
        ...


class ChatBackend(Protocol):
    @property
    def info(self) -> BackendInfo: ...

    @property
    def video_jobs(self) -> VideoJobs | None: ...

    def stream(self, conversation: Conversation,
               options: GenerationOptions) -> AsyncIterator[str | Usage]: ...

    def close(self) -> None: ...
