"""A chat conversation as immutable values, and its conversion to OpenAI messages.

Contract (pure functions, no Gradio, no I/O except :func:`attachment_for_file`):

- :class:`Conversation` is a tuple of :class:`Turn` (user or assistant text plus the
  :class:`Attachment` s a user turn carried). Every operation returns a new value, so a
  conversation can live in a per-browser-session ``gr.State`` and never be shared.
- :func:`to_openai_messages` turns a conversation (plus an optional system prompt) into
  OpenAI chat ``messages``. Each attachment becomes a content part chosen by a
  :data:`MediaPartFn`, which is told whether the attachment belongs to the newest user turn:
  :func:`path_part` references a local path (every turn, nothing re-uploaded),
  :func:`once_part` inlines a ``data:`` URL only in the turn that attached the file and
  leaves a short text note in later turns.
- :func:`chatbot_messages` is what the Gradio ``Chatbot`` shows (files as ``{"path": ...}``).
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ..media.sniff import media_kind_of, sniff_mime

AttachmentKind = Literal["image", "video"]
Role = Literal["user", "assistant"]
MediaPartFn = Callable[["Attachment", bool], dict[str, Any]]
_EXTRA_TYPES = {".webp": "image/webp", ".mkv": "video/x-matroska", ".m4v": "video/mp4",
                ".webm": "video/webm", ".mov": "video/quicktime"}


class UnsupportedAttachment(ValueError):
    """A file is neither an image nor a video."""


@dataclass(frozen=True)
class Attachment:
    path: str
    kind: AttachmentKind
    name: str
    mime: str

    def note(self) -> str:
        return f"[{self.kind} '{self.name}' attached earlier]"


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Conversation:
    turns: tuple[Turn, ...] = ()

    def add(self, turn: Turn) -> Conversation:
        return Conversation((*self.turns, turn))

    def with_reply(self, text: str) -> Conversation:
        """Set the text of the trailing assistant turn, adding one if needed."""
        if self.turns and self.turns[-1].role == "assistant":
            return Conversation((*self.turns[:-1], replace(self.turns[-1], text=text)))
        return self.add(Turn("assistant", text))

    def without_last_exchange(self) -> Conversation:
        """Without the newest user turn and what follows it (an exchange that failed)."""
        users = [i for i, turn in enumerate(self.turns) if turn.role == "user"]
        return Conversation(self.turns[: users[-1]]) if users else self

    def with_file_names(self, text: str) -> str:
        """``text`` with the staged copies' paths replaced by the names the user gave."""
        for attachment in self.attachments:
            text = text.replace(attachment.path, repr(attachment.name))
        return text

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        return tuple(a for t in self.turns for a in t.attachments)


def guess_mime(name: str, head: bytes = b"") -> str | None:
    """The MIME type from the file's first bytes, else from its name."""
    sniffed = sniff_mime(head) if head else None
    if sniffed:
        return sniffed
    suffix = Path(name).suffix.lower()
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(name)[0]


def classify(name: str, head: bytes = b"") -> tuple[AttachmentKind, str]:
    """``(kind, mime)`` of a file, or :class:`UnsupportedAttachment`."""
    mime = guess_mime(name, head)
    kind = media_kind_of(mime) if mime else None
    if kind not in ("image", "video"):
        raise UnsupportedAttachment(
            f"'{Path(name).name}' is not an image or a video ({mime or 'unknown type'})")
    return kind, str(mime)  # type: ignore[return-value]


def attachment_for_file(path: str | Path, name: str | None = None) -> Attachment:
    """Read a file's first bytes to classify it as an image or a video attachment."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    display = name or Path(path).name
    kind, mime = classify(display, head)
    return Attachment(str(path), kind, display, mime)


def user_turn(text: str, files: Sequence[str | Path]) -> Turn:
    return Turn("user", text.strip(), tuple(attachment_for_file(f) for f in files))


def path_part(attachment: Attachment, newest: bool) -> dict[str, Any]:
    """Reference the attachment by its local path (the server reads it in place)."""
    del newest  # a path costs nothing to repeat
    if attachment.kind == "image":
        return {"type": "image_url", "image_url": {"url": attachment.path}}
    return {"type": "video", "video": attachment.path}


def data_url(attachment: Attachment) -> str:
    payload = base64.b64encode(Path(attachment.path).read_bytes()).decode("ascii")
    return f"data:{attachment.mime};base64,{payload}"


def once_part(attachment: Attachment, newest: bool) -> dict[str, Any]:
    """Inline the bytes in the turn that attached the file; a text note afterwards."""
    if not newest:
        return {"type": "text", "text": attachment.note()}
    url = data_url(attachment)
    if attachment.kind == "image":
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "video_url", "video_url": {"url": url}}


def _newest_user_index(turns: Sequence[Turn]) -> int:
    return max((i for i, t in enumerate(turns) if t.role == "user"), default=-1)


def _user_content(turn: Turn, media_part: MediaPartFn, newest: bool) -> str | list[dict]:
    if not turn.attachments:
        return turn.text
    parts = [media_part(a, newest) for a in turn.attachments]
    if turn.text:
        parts.append({"type": "text", "text": turn.text})
    return parts


def to_openai_messages(conversation: Conversation, media_part: MediaPartFn = path_part,
                       system_prompt: str = "") -> list[dict[str, Any]]:
    """OpenAI chat messages for ``conversation``; empty assistant turns are left out."""
    messages: list[dict[str, Any]] = []
    if system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt.strip()})
    newest = _newest_user_index(conversation.turns)
    for index, turn in enumerate(conversation.turns):
        if turn.role == "assistant":
            if turn.text:
                messages.append({"role": "assistant", "content": turn.text})
            continue
        messages.append({"role": "user",
                         "content": _user_content(turn, media_part, index == newest)})
    return messages


def chatbot_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """The Gradio Chatbot value: one message per attachment, then the text (if any)."""
    shown: list[dict[str, Any]] = []
    for turn in conversation.turns:
        for attachment in turn.attachments:
            shown.append({"role": turn.role,
                          "content": {"path": attachment.path, "mime_type": attachment.mime,
                                      "orig_name": attachment.name}})
        if turn.text:
            shown.append({"role": turn.role, "content": turn.text})
    return shown
