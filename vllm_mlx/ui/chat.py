"""The Chat tab: a multimodal textbox and a Chatbot over a :class:`ChatBackend`.

Contract:

- Errors and refusals never raise into Gradio (no error overlay, no HTTP 500): they become
  the conversation's notice, shown as the last message. A refused message (empty, files
  for a text-only model, an unreadable file) leaves the textbox as it was; a reply that
  fails takes its exchange out of the history and puts its text and files back in the box.
- The textbox's Send button turns into Stop while a reply is generated. Stop is
  cooperative (:class:`StopSignals`): the reply ends at once, keeping what was generated
  and a "stopped" note, or, before the first token, a reply that only says it was stopped,
  so the next message stays a turn of its own.
- Every reply carries a note: tokens, tokens/s and time to the first token.
- Regenerate, Edit and Undo are the Chatbot's retry / edit / undo events; New chat starts
  over (the only way: the Chatbot's own trash icon, which covers messages, is hidden).
  The conversation is kept per browser session in ``gr.State`` and copied to
  ``gr.BrowserState`` after each change, so a reload restores it.
- With a model dropdown (:mod:`.model_picker`), a message is checked against the chosen
  model's capabilities and its reply comes from that model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from .backend import BackendError, ChatBackend, GenerationOptions, Usage
from .conversation import (
    Conversation,
    Turn,
    UnsupportedAttachment,
    chatbot_messages,
    from_json,
    to_json,
    turn_of_message,
    user_turn,
)
from .model_picker import ModelPicker, placeholder, upload_sources

ChatOutputs = tuple[list[dict[str, Any]], Conversation, Any]
STORAGE_KEY = "vllm-mlx-chat-history"
T = TypeVar("T")


class Stop(asyncio.Event):
    """Set to end a reply; ``discard`` when its outcome must not be shown (New chat)."""

    discard = False


@dataclass
class StopSignals:
    """One :class:`Stop` per browser session with a reply (or video job) in progress."""

    events: dict[str, Stop] = field(default_factory=dict)

    def start(self, session: str) -> Stop:
        self.events[session] = Stop()
        return self.events[session]

    def stop(self, session: str, discard: bool = False) -> None:
        if session in self.events:
            self.events[session].discard = discard
            self.events[session].set()

    def done(self, session: str, event: Stop) -> None:
        if self.events.get(session) is event:
            del self.events[session]


async def until_stopped(stream: AsyncIterator[T], stop: asyncio.Event) -> AsyncIterator[T]:
    """``stream``'s items until it ends or ``stop`` is set, even while waiting for the
    first item (video decoding, prompt processing); then the stream is closed."""
    waiter = asyncio.ensure_future(stop.wait())
    try:
        while True:
            step = asyncio.ensure_future(anext(stream))
            await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await step
                return
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        waiter.cancel()
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]


@dataclass
class ReplyClock:
    """Measures one reply: time to the first piece, tokens, tokens per second."""

    started: float = field(default_factory=time.monotonic)
    first: float | None = None
    pieces: int = 0
    tokens: int | None = None

    def piece(self) -> None:
        self.pieces += 1
        if self.first is None:
            self.first = time.monotonic()

    def note(self, stopped: bool = False) -> str:
        if self.first is None:
            return "stopped before the first token" if stopped else "no tokens"
        tokens = self.tokens or self.pieces
        elapsed = time.monotonic() - self.first
        parts = [f"{tokens} tokens"]
        if tokens > 1 and elapsed > 0:
            parts.append(f"{(tokens - 1) / elapsed:.1f} tok/s")
        parts.append(f"first token {self.first - self.started:.2f} s")
        return " · ".join(parts) + (" · stopped" if stopped else "")


def idle_box(**changes: Any) -> Any:
    return gr.MultimodalTextbox(interactive=True, submit_btn="Send", stop_btn=False, **changes)


def busy_box() -> Any:
    return gr.MultimodalTextbox(value=None, interactive=False, submit_btn=False,
                                stop_btn="Stop")


def refusal(message: dict[str, Any] | None, vision: bool, video: bool) -> tuple[Turn | None, str]:
    """The user turn for the textbox value, or ``None`` and why it is refused."""
    text = str((message or {}).get("text") or "")
    files = [str(f) for f in (message or {}).get("files") or []]
    if not text.strip() and not files:
        return None, "Type a message or attach an image or video first."
    if files and not vision:
        return None, "This model is text-only: remove the attachments to send the message."
    try:
        turn = user_turn(text, files)
    except (UnsupportedAttachment, OSError) as exc:
        return None, str(exc)
    if not video and any(a.kind == "video" for a in turn.attachments):
        return None, "This model takes images but not video: remove the videos."
    return turn, ""


def add_user_turn(message: dict[str, Any] | None, conversation: Conversation,
                  vision: bool, video: bool = True) -> tuple[Any, Conversation, list[Any]]:
    """Append the textbox value as a user turn, or keep the box and show why not."""
    turn, why = refusal(message, vision, video)
    if turn is None:
        refused = conversation.with_notice(why)
        return gr.skip(), refused, chatbot_messages(refused)
    updated = Conversation(conversation.turns).add(turn)
    return busy_box(), updated, chatbot_messages(updated)


def restored_box(conversation: Conversation) -> Any:
    """The textbox holding the newest user turn again (text and files)."""
    turn = conversation.turns[conversation.last_user_index()]
    return idle_box(value={"text": turn.text, "files": [a.path for a in turn.attachments]})


def make_responder(backend: ChatBackend, signals: StopSignals
                   ) -> Callable[..., AsyncIterator[ChatOutputs]]:
    async def respond(conversation: Conversation, max_tokens: float, temperature: float,
                      video_fps: float, video_max_frames: float, system_prompt: str,
                      request: gr.Request, model: str | None = None
                      ) -> AsyncIterator[ChatOutputs]:
        if not conversation.awaiting_reply:  # refused: its notice is already shown
            yield gr.skip(), gr.skip(), gr.skip()  # a generator must yield, or outputs clear
            return
        try:
            options = GenerationOptions(int(max_tokens), float(temperature), float(video_fps),
                                        int(video_max_frames), system_prompt or "",
                                        model or "")
        except ValueError as exc:
            kept = conversation.without_last_exchange().with_notice(str(exc))
            yield chatbot_messages(kept), kept, restored_box(conversation)
            return
        session = request.session_hash or ""
        stop = signals.start(session)
        clock, reply, current = ReplyClock(), "", conversation
        try:
            async for item in until_stopped(backend.stream(conversation, options), stop):
                if isinstance(item, Usage):
                    clock.tokens = item.completion_tokens
                    continue
                clock.piece()
                reply += item
                current = conversation.with_reply(reply)
                yield chatbot_messages(current), current, gr.skip()
        except BackendError as exc:
            # the failed turn leaves the session, or every later turn would resend it
            kept = conversation.without_last_exchange().with_notice(
                conversation.with_file_names(str(exc)))
            yield chatbot_messages(kept), kept, restored_box(conversation)
            return
        finally:
            signals.done(session, stop)
        if stop.discard:
            yield gr.skip(), gr.skip(), gr.skip()
            return
        final = conversation.with_reply(reply, clock.note(stopped=stop.is_set()))
        yield chatbot_messages(final), final, gr.skip()

    return respond


def retry(conversation: Conversation) -> tuple[Conversation, list[Any], Any]:
    again = conversation.without_last_reply()
    return again, chatbot_messages(again), busy_box()


def edit(conversation: Conversation, data: gr.EditData) -> tuple[Conversation, list[Any], Any]:
    index = turn_of_message(conversation, int(data.index))  # type: ignore[arg-type]
    turn = conversation.turns[index] if index >= 0 else None
    text = str(data.value if isinstance(data.value, str) else "").strip()
    if turn is None or turn.role != "user" or not (text or turn.attachments):
        kept = conversation.with_notice("Only the text of your own messages can be edited.")
        return kept, chatbot_messages(kept), gr.skip()
    edited = conversation.edited(index, text)
    return edited, chatbot_messages(edited), busy_box()


def undo(conversation: Conversation) -> tuple[Conversation, list[Any], Any]:
    if conversation.last_user_index() < 0:
        return conversation, chatbot_messages(conversation), gr.skip()
    box = restored_box(conversation)
    kept = conversation.without_last_exchange()
    return kept, chatbot_messages(kept), box


def new_chat() -> tuple[Conversation, list[Any], Any]:
    return Conversation(), [], idle_box(value=None)


def save(conversation: Conversation) -> dict[str, Any]:
    return to_json(conversation)


def loader(upload_root: Path) -> Callable[[Any], tuple[Conversation, list[Any]]]:
    def load(stored: Any) -> tuple[Conversation, list[Any]]:
        conversation = from_json(stored, upload_root)
        return conversation, chatbot_messages(conversation)

    return load


def upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


# The Chatbot's trash icon floats over the first message; New chat clears instead.
NO_TRASH = "<style>#chatbot button[aria-label='Clear'] { display: none !important; }</style>"


def build_chat(backend: ChatBackend, settings: list[Any], new_chat_button: Any,
               demo: gr.Blocks, picker: ModelPicker | None = None,
               model: Any | None = None) -> tuple[Any, list[Any]]:
    """The Chat tab's components and events, inside the current Blocks context; returns
    the textbox and the events that end a reply. ``model`` is the picker's dropdown (both
    or neither)."""
    info = backend.info
    signals = StopSignals()
    session = gr.State(Conversation())
    stored = gr.BrowserState(None, storage_key=STORAGE_KEY)
    chatbot = gr.Chatbot(show_label=False, elem_id="chatbot", height="64vh", min_height=320,
                         editable="user", buttons=["copy"], sanitize_html=True)
    gr.HTML(NO_TRASH, container=False, padding=False, elem_id="chat-style")
    box = gr.MultimodalTextbox(
        file_types=["image", "video"], file_count="multiple",
        placeholder=placeholder(info), sources=upload_sources(info), show_label=False,
        elem_id="chat-input", autofocus=True, submit_btn="Send", stop_btn=False)
    respond = make_responder(backend, signals)
    chosen = [model] if model is not None else []

    def add(message: dict[str, Any] | None, conversation: Conversation,
            model_id: str | None = None) -> Any:
        seen = picker.info(model_id) if picker is not None else info
        return add_user_turn(message, conversation, seen.vision, seen.takes_video)

    async def stop(request: gr.Request) -> None:
        signals.stop(request.session_hash or "")

    async def discard(request: gr.Request) -> None:
        signals.stop(request.session_hash or "", discard=True)

    def reply_after(event: Any) -> Any:
        replying = event.then(respond, [session, *settings, *chosen], [chatbot, session, box],
                              show_progress="hidden")
        ended.append(replying.then(idle_box, None, box, queue=False).then(
            save, session, stored, queue=False))
        return replying

    ended: list[Any] = []
    reply_after(box.submit(add, [box, session, *chosen], [box, session, chatbot],
                           queue=False))
    reply_after(chatbot.retry(retry, session, [session, chatbot, box], queue=False))
    reply_after(chatbot.edit(edit, session, [session, chatbot, box], queue=False))
    chatbot.undo(undo, session, [session, chatbot, box], queue=False).then(
        save, session, stored, queue=False)
    box.stop(stop, None, None, queue=False)
    # no chatbot.clear listener; Gradio 6 shows its trash icon anyway, hidden by NO_TRASH
    new_chat_button.click(discard, None, None, queue=False).then(
        new_chat, None, [session, chatbot, box], queue=False).then(
        save, session, stored, queue=False)
    demo.load(loader(upload_folder()), stored, [session, chatbot], queue=False)
    return box, ended
