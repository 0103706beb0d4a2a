"""OpenAI-style chat messages -> engine messages with decoded media.

Two steps, kept apart so the first can be property-tested without I/O:

1. :func:`parse_messages` (pure) validates message dicts and turns every content part
   form the spec accepts into :class:`TextRef` / :class:`MediaRef` (text, ``image_url``
   as object or bare string, ``video_url``, ``{"type": "video", "video": ...}``,
   ``input_image``, ``input_file``, ``file`` with ``file_data`` or ``file_id``), raising
   :class:`ContentError` with the JSON path of the offending field.
2. :func:`resolve_messages` / :func:`resolve_messages_sync` fetch and decode each media
   reference with :mod:`vllm_mlx.media` under a :class:`MediaPolicy`, sampling videos by
   the request's fps / max_frames. CPU-heavy decoding runs off the event loop. A document
   (a ``file`` part's data, or an uploaded file that is not an image or video) becomes a
   PDF's pages as images, rendered by the :data:`DocumentPages` the server gives (a
   text-only model, or no renderer: a 400 saying so), or a UTF-8 text file's text (after
   its filename); any other file is a 400 naming its type. Only the async path reads
   documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx
from PIL import Image

from .bounds import excerpt
from .engine.types import ChatMessage, ContentPart, ImagePart, TextPart, VideoClip, VideoPart
from .media import (
    MediaBytes,
    MediaPolicy,
    SampledVideo,
    decode_image,
    load_source,
    load_source_sync,
    sample_video,
)
from .media.dataurl import parse_data_url
from .media.sniff import is_pdf, media_kind_of, sniff_mime

ROLES = ("system", "developer", "user", "assistant", "tool")
FileResolver = Callable[[str], str]  # file id -> local path
DocumentPages = Callable[[bytes, str], Awaitable[list[Image.Image]]]  # PDF, name -> pages


class ContentError(ValueError):
    """A message or content part is malformed; ``param`` is its JSON path."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class TextRef:
    text: str


@dataclass(frozen=True)
class MediaRef:
    kind: Literal["image", "video", "file", "document"]
    source: str  # a URL, an uploaded file's id ("file"), a data URL ("document")
    name: str | None = None  # a file part's filename


PartRef = TextRef | MediaRef


@dataclass(frozen=True)
class MessageRef:
    role: str
    parts: tuple[PartRef, ...]
    tool_calls: tuple[dict[str, Any], ...] = ()  # an assistant's function calls
    tool_call_id: str | None = None  # a tool reply's call

    def resolved(self, parts: Sequence[ContentPart]) -> ChatMessage:
        return ChatMessage(self.role, tuple(parts), self.tool_calls, self.tool_call_id)


@dataclass(frozen=True)
class VideoSampling:
    fps: float = 2.0
    max_frames: int = 64
    min_frames: int = 1


def _url_field(value: Any, path: str) -> str:
    if isinstance(value, str):
        url = value
    elif isinstance(value, Mapping) and isinstance(value.get("url"), str):
        url = value["url"]
    else:
        raise ContentError("expected a URL string or an object with a 'url' string", path)
    if not url.strip():
        raise ContentError("the URL is empty", path)
    return url.strip()


def _parse_part(part: Any, path: str) -> PartRef:
    if isinstance(part, str):
        return TextRef(part)
    if not isinstance(part, Mapping):
        raise ContentError("each content part must be an object", path)
    kind = part.get("type")
    if kind in ("text", "input_text"):
        if not isinstance(part.get("text"), str):
            raise ContentError("a text part needs a 'text' string", f"{path}.text")
        return TextRef(part["text"])
    if kind in ("image_url", "input_image"):
        key = "image_url" if "image_url" in part else "url"
        return MediaRef("image", _url_field(part.get(key), f"{path}.{key}"))
    if kind == "image":
        return MediaRef("image", _url_field(part.get("image"), f"{path}.image"))
    if kind == "video_url":
        return MediaRef("video", _url_field(part.get("video_url"), f"{path}.video_url"))
    if kind == "video":
        return MediaRef("video", _url_field(part.get("video"), f"{path}.video"))
    if kind == "input_file":
        file_id = part.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise ContentError("an input_file part needs a 'file_id'", f"{path}.file_id")
        return MediaRef("file", file_id)
    if kind == "file":
        return _file_part(part.get("file"), f"{path}.file")
    raise ContentError(f"unsupported content part type {excerpt(kind)}", f"{path}.type")


def _file_part(spec: Any, path: str) -> MediaRef:
    """OpenAI's ``{"type": "file", "file": {"file_data" | "file_id", "filename"}}``."""
    if not isinstance(spec, Mapping):
        raise ContentError("a file part needs a 'file' object", path)
    name = spec.get("filename") if isinstance(spec.get("filename"), str) else None
    file_id, data = spec.get("file_id"), spec.get("file_data")
    if isinstance(file_id, str) and file_id:
        return MediaRef("file", file_id, name)
    if not isinstance(data, str) or not data.strip():
        raise ContentError("a file part needs 'file_data' (a data: URL, or base64) or "
                           "'file_id'", f"{path}.file_data")
    data = data.strip()
    url = data if data.startswith("data:") else f"data:application/octet-stream;base64,{data}"
    return MediaRef("document", url, name)


def parse_message(message: Any, index: int) -> MessageRef:
    path = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise ContentError("each message must be an object", path)
    role = message.get("role")
    if role not in ROLES:
        raise ContentError(f"role must be one of {', '.join(ROLES)}", f"{path}.role")
    content = message.get("content")
    if content is None:
        parts: tuple[PartRef, ...] = ()
    elif isinstance(content, str):
        parts = (TextRef(content),)
    elif isinstance(content, Sequence):
        parts = tuple(_parse_part(p, f"{path}.content[{i}]") for i, p in enumerate(content))
    else:
        raise ContentError("content must be a string or a list of parts", f"{path}.content")
    return MessageRef("system" if role == "developer" else str(role), parts,
                      _tool_calls(message.get("tool_calls"), path),
                      _optional_text(message.get("tool_call_id"), f"{path}.tool_call_id"))


def _optional_text(value: Any, path: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ContentError("expected a string", path)
    return value


def _tool_calls(calls: Any, path: str) -> tuple[dict[str, Any], ...]:
    """An assistant's earlier calls, as chat templates read them (arguments as objects)."""
    if calls is None:
        return ()
    if not isinstance(calls, Sequence) or isinstance(calls, str):
        raise ContentError("tool_calls must be a list", f"{path}.tool_calls")
    parsed = []
    for i, call in enumerate(calls):
        where = f"{path}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ContentError("a tool call needs a function with a 'name'", where)
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):  # not JSON: the template shows the text
                arguments = json.loads(arguments or "{}")
        parsed.append({"id": call.get("id"), "type": "function",
                       "function": {"name": function["name"], "arguments": arguments}})
    return tuple(parsed)


def parse_messages(messages: Any) -> tuple[MessageRef, ...]:
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise ContentError("messages must be a non-empty list", "messages")
    parsed = tuple(parse_message(m, i) for i, m in enumerate(messages))
    _check_tool_replies(parsed)
    return parsed


def _check_tool_replies(messages: Sequence[MessageRef]) -> None:
    """A ``tool`` message answers a call of the assistant message before it (as OpenAI's)."""
    calls: set[str | None] = set()
    for i, message in enumerate(messages):
        if message.role == "assistant":
            calls = {call.get("id") for call in message.tool_calls}
        elif message.role == "tool" and message.tool_call_id not in calls - {None}:
            raise ContentError("a 'tool' message must answer a call of the assistant message "
                               "before it: its tool_call_id must be one of that message's "
                               "tool_calls ids", f"messages[{i}].tool_call_id")


def media_count(messages: Sequence[MessageRef]) -> int:
    return sum(isinstance(p, MediaRef) for m in messages for p in m.parts)


def clip_from_sampled(video: SampledVideo) -> VideoClip:
    total = max(int(round(video.duration * video.source_fps)), video.frames.shape[0])
    return VideoClip(
        frames=video.frames, timestamps=tuple(video.timestamps),
        frame_indices=tuple(video.frame_indices), source_fps=video.source_fps,
        total_frames=total, sampled_fps=video.sampled_fps,
    )


def _uploaded_kind(path: str) -> str:
    """Image, video or document (a PDF, a text file), from an uploaded file's first bytes
    (its name may say nothing)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return "image"  # the loader reports it
    mime = sniff_mime(head)
    if is_pdf(head) or (mime is None and _as_text(head, partial=True) is not None):
        return "document"
    return "video" if media_kind_of(mime) == "video" else "image"


def _as_text(data: bytes, partial: bool = False) -> str | None:
    """``data`` as UTF-8 text, None if it is not (``partial``: a file's first bytes, which
    may end inside a character)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[:exc.start].decode() if partial and exc.start >= len(data) - 3 else None


def _named(ref: MediaRef, media: MediaBytes) -> MediaBytes:
    """Errors about an uploaded file name its id, not where the server stores it."""
    return replace(media, origin=ref.source) if ref.kind == "file" else media


@dataclass(frozen=True)
class Resolver:
    """How media references become decoded parts for one request."""

    policy: MediaPolicy
    video: VideoSampling = VideoSampling()
    files: FileResolver | None = None
    documents: DocumentPages | None = None  # None: PDFs are refused
    vision: bool = True  # the model reads images (a PDF's pages)

    def _source(self, ref: MediaRef) -> tuple[str, str]:
        if ref.kind != "file":
            return ref.kind, ref.source
        if self.files is None:
            raise ContentError("file_id parts need the files API", "messages")
        source = self.files(ref.source)
        return _uploaded_kind(source), source

    def _document_bytes(self, ref: MediaRef, source: str) -> bytes:
        if ref.kind == "document":
            return parse_data_url(source, max_bytes=self.policy.max_bytes("video"))[0]
        with open(source, "rb") as fh:
            return fh.read()

    async def _document(self, data: bytes, ref: MediaRef) -> list[ContentPart]:
        """A PDF's pages as images, or a text file's text."""
        name = excerpt(ref.name or (ref.source if ref.kind == "file" else "the file"))
        if is_pdf(data[:1024]):
            if not self.vision:
                raise ContentError(f"{name} is a PDF: its pages are read as images, and this "
                                   "model is text-only", "messages")
            if self.documents is None:
                raise ContentError(f"{name} is a PDF, and this server has no PDF renderer",
                                   "messages")
            return [ImagePart(page) for page in await self.documents(data, name)]
        text = _as_text(data)
        if text is None:
            kind = sniff_mime(data) or "binary"
            raise ContentError(f"{name} cannot be read: a file part may be a PDF or UTF-8 "
                               f"text, not {kind} (send images as image_url parts)",
                               "messages")
        return [TextPart(f"{ref.name}:\n{text}" if ref.name else text)]

    async def parts(self, ref: PartRef, client: httpx.AsyncClient | None
                    ) -> list[ContentPart]:
        """What one reference becomes: one part, or a PDF's pages."""
        if isinstance(ref, TextRef):
            return [TextPart(ref.text)]
        kind, source = self._source(ref)
        if kind == "document":
            data = await asyncio.to_thread(self._document_bytes, ref, source)
            return await self._document(data, ref)
        return [await self._media(ref, kind, source, client)]

    def _decode(self, kind: str, media: Any) -> ContentPart:
        if kind == "image":
            return ImagePart(decode_image(media, policy=self.policy))
        sampled = sample_video(media, fps=self.video.fps, max_frames=self.video.max_frames,
                               min_frames=self.video.min_frames, policy=self.policy)
        return VideoPart(clip_from_sampled(sampled))

    async def part(self, ref: PartRef, client: httpx.AsyncClient | None) -> ContentPart:
        if isinstance(ref, TextRef):
            return TextPart(ref.text)
        return await self._media(ref, *self._source(ref), client)

    async def _media(self, ref: MediaRef, kind: str, source: str,
                     client: httpx.AsyncClient | None) -> ContentPart:
        media = await load_source(source, kind=kind, policy=self.policy,  # type: ignore[arg-type]
                                  client=client)
        return await asyncio.to_thread(self._decode, kind, _named(ref, media))

    def part_sync(self, ref: PartRef) -> ContentPart:
        if isinstance(ref, TextRef):
            return TextPart(ref.text)
        kind, source = self._source(ref)
        if kind == "document":
            raise ContentError("file parts (PDFs, text files) are read by the server's chat "
                               "API only", "messages")
        media = load_source_sync(source, kind=kind, policy=self.policy)  # type: ignore[arg-type]
        return self._decode(kind, _named(ref, media))


async def resolve_messages(messages: Sequence[MessageRef], resolver: Resolver,
                           client: httpx.AsyncClient | None = None) -> tuple[ChatMessage, ...]:
    resolved = []
    for message in messages:
        parts = [part for p in message.parts for part in await resolver.parts(p, client)]
        resolved.append(message.resolved(parts))
    return tuple(resolved)


def resolve_messages_sync(messages: Sequence[MessageRef], resolver: Resolver
                          ) -> tuple[ChatMessage, ...]:
    return tuple(m.resolved([resolver.part_sync(p) for p in m.parts])
                 for m in messages)
