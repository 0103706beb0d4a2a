"""Plain data passed between callers and the engine.

Framework-free (no pydantic, no FastAPI): the HTTP layer converts its protocol models
into these, the Python API builds them directly. Media arrive already decoded (PIL
images, sampled video frames); the engine never fetches or decodes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding settings; defaults are greedy."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # None: off; k >= 0: chosen token plus k alternatives
    logit_bias: dict[int, float] | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    json_schema: dict | None = None  # constrain output to this JSON schema
    json_object: bool = False  # constrain output to any JSON object
    grammar: str | None = None  # constrain output to this llguidance (Lark) grammar
    skip_special_tokens: bool = True  # leave special tokens' text out (ids, logprobs stay)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")


@dataclass(frozen=True)
class VideoClip:
    """Frames sampled from one video, with the times they were shown at."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    timestamps: tuple[float, ...]
    frame_indices: tuple[int, ...]
    source_fps: float
    total_frames: int
    sampled_fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ImagePart:
    image: Image.Image
    type: Literal["image"] = "image"


@dataclass(frozen=True)
class VideoPart:
    video: VideoClip
    type: Literal["video"] = "video"


ContentPart = TextPart | ImagePart | VideoPart


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: tuple[ContentPart, ...]
    # function calling, as the chat template reads it: an assistant's calls
    # ({"type", "id", "function": {"name", "arguments": dict}}), a tool reply's call id
    tool_calls: tuple[dict[str, Any], ...] = ()
    tool_call_id: str | None = None

    @classmethod
    def text(cls, role: str, text: str) -> ChatMessage:
        return cls(role=role, content=(TextPart(text),))


@dataclass(frozen=True)
class GenerationRequest:
    """Chat ``messages`` (templated by the engine), or a raw ``prompt`` as text or as token
    ids (``prompt_ids``): exactly one of the three."""

    sampling: SamplingParams = field(default_factory=SamplingParams)
    messages: tuple[ChatMessage, ...] = ()
    prompt: str | None = None
    prompt_ids: tuple[int, ...] | None = None
    images: tuple[Image.Image, ...] = ()  # only with ``prompt``
    videos: tuple[VideoClip, ...] = ()  # only with ``prompt``
    request_id: str = ""
    cache_prefix: bool = True  # False: leave this request's KV out of the prefix cache
    tools: tuple[dict[str, Any], ...] = ()  # function specs shown by the chat template
    # more variables for the chat template (e.g. enable_thinking); part of the prompt
    template_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = (bool(self.messages), self.prompt is not None, self.prompt_ids is not None)
        if sum(given) != 1:
            raise ValueError("give exactly one of messages, prompt and prompt_ids")
        if self.prompt_ids is not None and (self.images or self.videos):
            raise ValueError("a prompt given as token ids cannot carry media")

    @property
    def is_raw(self) -> bool:
        """A raw prompt (text or ids): its output continues it verbatim."""
        return not self.messages

    @property
    def prompt_field(self) -> str:
        """The API field that holds this request's prompt, for errors about it."""
        return "prompt" if self.is_raw else "messages"


class TokenAlternative(NamedTuple):
    """One of the most likely tokens at a position: id, text, log-probability, bytes."""

    token_id: int
    token: str
    logprob: float
    raw: bytes


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-probability; ``raw`` is its own bytes (its text shows
    U+FFFD where they are part of a UTF-8 character)."""

    token_id: int
    token: str
    logprob: float
    top: tuple[TokenAlternative, ...] = ()
    raw: bytes = b""


@dataclass(frozen=True)
class GenerationChunk:
    """One step of output: new text, and on the last chunk the finish reason."""

    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the prefix cache


@dataclass(frozen=True)
class Accepted:
    """Sent to a request's sink once its prompt is prepared and fits the context: an error
    before it is the request's fault, one after it a failure of generation."""


ACCEPTED = Accepted()


@dataclass(frozen=True)
class GenerationResult:
    """A whole generation, gathered from its chunks."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()
    cached_tokens: int = 0

    @classmethod
    def from_chunks(cls, chunks: list[GenerationChunk]) -> GenerationResult:
        last = chunks[-1]
        return cls(
            text="".join(c.text for c in chunks),
            token_ids=tuple(t for c in chunks for t in c.token_ids),
            finish_reason=last.finish_reason or "stop",
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.completion_tokens,
            logprobs=tuple(lp for c in chunks for lp in c.logprobs),
            cached_tokens=last.cached_tokens,
        )
