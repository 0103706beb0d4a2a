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
- A user turn that got no reply (stopped before the first token) stays in the history but
  is left out of the messages, so the next turn neither merges with it nor breaks a chat
  template's user/assistant alternation. An assistant turn's ``note`` (stats, "stopped")
  and the conversation's ``notice`` (an error or refusal to show once) are display-only.
- :func:`chatbot_messages` is what the Gradio ``Chatbot`` shows (files as ``{"path": ...}``),
  and :func:`turn_of_message` maps a Chatbot message index back to its turn.
- :func:`to_json` / :func:`from_json` store a conversation in the browser; loading keeps
  only attachments that still exist under the given upload folder.
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
    note: str = ""  # shown under a reply (stats, "stopped"), never sent to the model


@dataclass(frozen=True)
class Conversation:
    turns: tuple[Turn, ...] = ()
    notice: str = ""  # an error or refusal shown after the turns until the next change

    def add(self, turn: Turn) -> Conversation:
        return Conversation((*self.turns, turn))

    def with_reply(self, text: str, note: str = "") -> Conversation:
        """Set the text (and note) of the trailing assistant turn, adding one if needed."""
        if self.turns and self.turns[-1].role == "assistant":
            last = replace(self.turns[-1], text=text, note=note)
            return Conversation((*self.turns[:-1], last))
        return self.add(Turn("assistant", text, note=note))

    def with_notice(self, notice: str) -> Conversation:
        return replace(self, notice=notice)

    @property
    def awaiting_reply(self) -> bool:
        """The newest turn is a user turn that has no reply yet."""
        return bool(self.turns) and self.turns[-1].role == "user"

    def last_user_index(self) -> int:
        return max((i for i, t in enumerate(self.turns) if t.role == "user"), default=-1)

    def without_last_exchange(self) -> Conversation:
        """Without the newest user turn and what follows it (an exchange that failed)."""
        newest = self.last_user_index()
        return Conversation(self.turns[:newest]) if newest >= 0 else self

    def without_last_reply(self) -> Conversation:
        """Up to and including the newest user turn (to generate its reply again)."""
        newest = self.last_user_index()
        return Conversation(self.turns[: newest + 1]) if newest >= 0 else self

    def edited(self, index: int, text: str) -> Conversation:
        """The user turn at ``index`` with new text, and nothing after it."""
        turn = self.turns[index]
        if turn.role != "user":
            raise ValueError("only your own messages can be edited")
        return Conversation((*self.turns[:index], replace(turn, text=text.strip())))

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


def _answered(turns: Sequence[Turn], index: int) -> bool:
    following = turns[index + 1] if index + 1 < len(turns) else None
    return following is not None and (following.role == "user" or bool(following.text))


def to_openai_messages(conversation: Conversation, media_part: MediaPartFn = path_part,
                       system_prompt: str = "") -> list[dict[str, Any]]:
    """OpenAI chat messages for ``conversation``; empty assistant turns are left out."""
    messages: list[dict[str, Any]] = []
    if system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt.strip()})
    turns = conversation.turns
    newest = _newest_user_index(turns)
    for index, turn in enumerate(turns):
        if turn.role == "assistant":
            if turn.text:
                messages.append({"role": "assistant", "content": turn.text})
            continue
        if index != newest and not _answered(turns, index):
            continue
        messages.append({"role": "user",
                         "content": _user_content(turn, media_part, index == newest)})
    return messages


def _turn_messages(turn: Turn) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    for a in turn.attachments:
        shown.append({"role": turn.role,
                      "content": {"path": a.path, "mime_type": a.mime, "orig_name": a.name}})
        if a.kind == "video":  # a player shows no file name
            shown.append({"role": turn.role, "content": f"<sub>video: {a.name}</sub>"})
    if turn.text:
        shown.append({"role": turn.role, "content": turn.text})
    if turn.note:  # a small line in the reply's bubble
        shown.append({"role": turn.role, "content": f"<sub>{turn.note}</sub>"})
    return shown


def chatbot_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """The Gradio Chatbot value: per turn one message per attachment, then the text (if
    any), then the note; the conversation's notice last."""
    shown = [m for turn in conversation.turns for m in _turn_messages(turn)]
    if conversation.notice:
        shown.append({"role": "assistant", "content": f"⚠️ {conversation.notice}"})
    return shown


def turn_of_message(conversation: Conversation, message_index: int) -> int:
    """The index of the turn that the Chatbot message at ``message_index`` shows, or -1."""
    owners = [i for i, turn in enumerate(conversation.turns) for _ in _turn_messages(turn)]
    return owners[message_index] if 0 <= message_index < len(owners) else -1


def to_json(conversation: Conversation) -> dict[str, Any]:
    """A JSON value for browser storage (the notice is not kept)."""
    return {"version": 1, "turns": [
        {"role": t.role, "text": t.text, "note": t.note,
         "attachments": [{"path": a.path, "name": a.name} for a in t.attachments]}
        for t in conversation.turns]}


def _stored_attachment(item: Any, root: Path) -> Attachment | None:
    """The attachment if its file still exists under ``root`` (stored values come from the
    browser, so a path outside the upload folder is never trusted)."""
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        return None
    path = Path(item["path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    try:
        return attachment_for_file(path, str(item.get("name") or path.name))
    except (UnsupportedAttachment, OSError):
        return None


def from_json(data: Any, upload_root: Path) -> Conversation:
    """The conversation stored by :func:`to_json`; anything malformed yields an empty one.
    Attachments whose files are gone are dropped and named in the notice."""
    if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
        return Conversation()
    root, turns, lost = upload_root.resolve(), [], []
    for item in data["turns"]:
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            return Conversation()
        stored = item.get("attachments") or []
        kept = [a for a in (_stored_attachment(s, root) for s in stored) if a is not None]
        lost += [str(s.get("name")) for s in stored
                 if isinstance(s, dict) and not any(a.path == str(Path(str(s.get("path")))
                                                                  .resolve()) for a in kept)]
        turns.append(Turn(item["role"], str(item.get("text") or ""), tuple(kept),
                          str(item.get("note") or "")))
    notice = (f"no longer on the server, left out of the restored chat: {', '.join(lost)}"
              if lost else "")
    return Conversation(tuple(turns), notice)
