"""The Gradio page's structure and its input validation, without a browser."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

gr = pytest.importorskip("gradio")

from vllm_mlx.ui.app import add_user_turn, build_chat_app, make_responder  # noqa: E402
from vllm_mlx.ui.backend import BackendError, BackendInfo, Usage  # noqa: E402
from vllm_mlx.ui.chat import Stop, StopSignals, until_stopped  # noqa: E402
from vllm_mlx.ui.conversation import Conversation, Turn  # noqa: E402
from vllm_mlx.ui.videos import VideoJobs  # noqa: E402


@dataclass
class StubBackend:
    """Only what building the page reads; generation is exercised in the browser test."""

    info: BackendInfo
    video_jobs: VideoJobs | None = None

    async def stream(self, conversation, options):  # pragma: no cover - not called
        yield ""

    def close(self) -> None:
        pass


VISION = BackendInfo("m", vision=True, video=True, location="in-process")


def blocks_of(demo, kind):
    return [b for b in demo.blocks.values() if isinstance(b, kind)]


class FakeRequest:
    session_hash = "s"


def test_chat_page_has_its_controls():
    demo = build_chat_app(StubBackend(VISION))
    (box,) = blocks_of(demo, gr.MultimodalTextbox)
    assert box.file_count == "multiple" and set(box.file_types) == {"image", "video"}
    assert box.submit_btn == "Send" and box.stop_btn is False  # Send turns into Stop
    labels = {s.label for s in blocks_of(demo, gr.Slider)}
    assert {"Max tokens", "Temperature", "Video fps (frames kept/s)",
            "Video max frames"} <= labels
    assert {b.value for b in blocks_of(demo, gr.Button)} == {"New chat"}
    assert blocks_of(demo, gr.Sidebar) and blocks_of(demo, gr.BrowserState)
    assert blocks_of(demo, gr.Tab) == []  # no lone "Chat" tab
    (chatbot,) = blocks_of(demo, gr.Chatbot)
    assert chatbot.editable == "user" and not chatbot.show_label
    header = next(m for m in blocks_of(demo, gr.Markdown) if m.elem_id == "model-info")
    assert "`m`" in header.value and "sees images and video" in header.value


def test_videos_tab_only_with_a_video_model():
    demo = build_chat_app(StubBackend(VISION, VideoJobs("http://127.0.0.1:1/v1")))
    assert [t.label for t in blocks_of(demo, gr.Tab)] == ["Chat", "Videos"]
    assert blocks_of(demo, gr.Video) and blocks_of(demo, gr.Gallery)


def test_refused_messages_become_notices_and_keep_the_box(ui_media):
    cases = [({"text": "  ", "files": []}, True, True, "Type a message"),
             ({"text": "x", "files": [str(ui_media / "photo.png")]}, False, True, "text-only"),
             ({"text": "x", "files": [str(ui_media / "notes.txt")]}, True, True,
              "not an image or a video"),
             ({"text": "x", "files": [str(ui_media / "clip.mp4")]}, True, False, "not video")]
    for message, vision, video, why in cases:
        box, conv, shown = add_user_turn(message, Conversation(), vision, video)
        assert why in conv.notice and why in shown[-1]["content"]
        assert not conv.turns and box == gr.skip()
    _, conv, shown = add_user_turn({"text": "hi", "files": [str(ui_media / "clip.mp4")]},
                                   Conversation(), True)
    assert len(conv.turns) == 1 and conv.turns[0].attachments[0].kind == "video"
    assert [m["role"] for m in shown] == ["user", "user", "user"]  # player, name, text


@dataclass
class FailingOnceBackend(StubBackend):
    """Fails the first reply naming the attachment's path, then answers."""

    calls: int = 0

    async def stream(self, conversation, options):
        self.calls += 1
        if self.calls == 1:
            path = conversation.attachments[-1].path
            raise BackendError(f"{path} is not a readable image")
        yield f"reply to {len(conversation.turns)} turns"
        yield Usage(5)


async def test_a_failed_reply_is_a_notice_and_the_input_comes_back(ui_media):
    respond = make_responder(FailingOnceBackend(VISION), StopSignals())
    _, conv, _ = add_user_turn({"text": "look", "files": [str(ui_media / "photo.png")]},
                               Conversation().add(Turn("user", "hi")).add(
                                   Turn("assistant", "hello")), True)
    outputs = [o async for o in respond(conv, 8, 0.0, 2.0, 8, "", FakeRequest())]
    shown, kept, box = outputs[-1]
    assert [t.text for t in kept.turns] == ["hi", "hello"]  # the failed exchange is gone
    assert "'photo.png' is not a readable image" in kept.notice
    assert box.value["text"] == "look" and len(box.value["files"]) == 1
    _, retry, _ = add_user_turn({"text": "again", "files": []}, kept, True)
    replies = [o async for o in respond(retry, 8, 0.0, 2.0, 8, "", FakeRequest())]
    final = replies[-1][1].turns[-1]
    assert final.text == "reply to 3 turns" and final.note.startswith("5 tokens")


async def test_until_stopped_ends_while_waiting_for_the_first_item():
    closed = []

    async def slow():
        try:
            await asyncio.sleep(30)
            yield "never"
        finally:
            closed.append(True)

    stop = Stop()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert [i async for i in until_stopped(slow(), stop)] == []
    assert closed == [True]
