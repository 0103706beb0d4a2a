"""The Gradio page's structure and its input validation, without a browser."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

gr = pytest.importorskip("gradio")

from vllm_mlx.ui.app import add_user_turn, build_chat_app, make_responder  # noqa: E402
from vllm_mlx.ui.backend import BackendError, BackendInfo  # noqa: E402
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


def test_chat_page_has_its_controls():
    demo = build_chat_app(StubBackend(VISION))
    (box,) = blocks_of(demo, gr.MultimodalTextbox)
    assert box.file_count == "multiple" and set(box.file_types) == {"image", "video"}
    labels = {s.label for s in blocks_of(demo, gr.Slider)}
    assert {"Max tokens", "Temperature", "Video fps (frames kept/s)",
            "Video max frames"} <= labels
    assert {b.value for b in blocks_of(demo, gr.Button)} == {"Stop", "Clear"}
    assert [t.label for t in blocks_of(demo, gr.Tab)] == ["Chat"]
    (header, *_) = blocks_of(demo, gr.Markdown)
    assert "`m`" in header.value and "sees images and video" in header.value


def test_videos_tab_only_with_a_video_model():
    demo = build_chat_app(StubBackend(VISION, VideoJobs("http://127.0.0.1:1/v1")))
    assert [t.label for t in blocks_of(demo, gr.Tab)] == ["Chat", "Videos"]
    assert blocks_of(demo, gr.Video)


def test_add_user_turn_validates(ui_media):
    with pytest.raises(gr.Error):
        add_user_turn({"text": "  ", "files": []}, Conversation(), True)
    with pytest.raises(gr.Error, match="text-only"):
        add_user_turn({"text": "x", "files": [str(ui_media / "photo.png")]}, Conversation(),
                      False)
    with pytest.raises(gr.Error, match="not an image or a video"):
        add_user_turn({"text": "x", "files": [str(ui_media / "notes.txt")]}, Conversation(),
                      True)
    with pytest.raises(gr.Error, match="not video"):
        add_user_turn({"text": "x", "files": [str(ui_media / "clip.mp4")]}, Conversation(),
                      True, video=False)
    _, conv, shown = add_user_turn({"text": "hi", "files": [str(ui_media / "clip.mp4")]},
                                   Conversation(), True)
    assert len(conv.turns) == 1 and conv.turns[0].attachments[0].kind == "video"
    assert [m["role"] for m in shown] == ["user", "user"]


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


async def test_a_failed_reply_leaves_the_conversation_usable(ui_media):
    backend = FailingOnceBackend(VISION)
    respond = make_responder(backend)
    _, conv, _ = add_user_turn({"text": "look", "files": [str(ui_media / "photo.png")]},
                               Conversation().add(Turn("user", "hi")).add(
                                   Turn("assistant", "hello")), True)
    outputs = []
    with pytest.raises(gr.Error, match="'photo.png' is not a readable image"):
        async for output in respond(conv, 8, 0.0, 2.0, 8, ""):
            outputs.append(output)
    _, kept = outputs[-1]
    assert [t.text for t in kept.turns] == ["hi", "hello"]  # the failed exchange is gone
    _, retry, _ = add_user_turn({"text": "again", "files": []}, kept, True)
    replies = [output async for output in respond(retry, 8, 0.0, 2.0, 8, "")]
    assert replies[-1][1].turns[-1].text == "reply to 3 turns"
