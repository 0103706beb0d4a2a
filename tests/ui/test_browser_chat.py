"""The chat page's behaviour in Chromium, on a scripted backend (fast and deterministic).

The backend waits before its first token when the message says "slow" (as video decoding
or prompt processing does), streams numbered words, fails on "fail" naming the attached
file, and on "server down" asks a real :class:`RemoteBackend` pointed at a closed port.
Screenshots of the main states go to artifacts/ui/ and docs/ (the README shows them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.conftest import free_port
from tests.ui.browser import (
    BOT,
    BUSY,
    READY,
    SEND,
    STOP,
    USER,
    box_text,
    finish,
    launched,
    message_button,
    open_chat,
    send,
    shoot,
    texts,
    wait_for_text,
)
from vllm_mlx.ui.backend import BackendError, BackendInfo, Usage
from vllm_mlx.ui.conversation import to_openai_messages

gr = pytest.importorskip("gradio")


@dataclass
class ScriptedBackend:
    info: BackendInfo
    video_jobs: None = None
    seen: list[list[dict]] = field(default_factory=list)
    first_token_s: float = 3.0

    async def stream(self, conversation, options):
        self.seen.append(to_openai_messages(conversation))
        text = conversation.turns[-1].text
        if "server down" in text:
            async for piece in down_backend().stream(conversation, options):
                yield piece
        if "fail" in text:
            name = conversation.turns[-1].attachments[0].path
            raise BackendError(f"cannot decode {name}: not a video")
        if "slow" in text:
            await asyncio.sleep(self.first_token_s)
        count, limit = 0, 400 if "long" in text else 24
        for count in range(1, min(options.max_tokens, limit) + 1):
            yield f"word{count} "
            await asyncio.sleep(0.05 if "long" in text else 0.005)
        yield Usage(count)

    def close(self) -> None:
        pass


def down_backend():
    from openai import AsyncOpenAI

    from vllm_mlx.ui.remote import RemoteBackend

    url = f"http://127.0.0.1:{free_port()}"
    return RemoteBackend(AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0), "m",
                         BackendInfo("m", True, True, url))


INFO = BackendInfo("scripted", vision=True, video=False, location="in-process")


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend(INFO)


@pytest.fixture(scope="module")
def url(chromium, backend, monkeypatch_module) -> Iterator[str]:
    from vllm_mlx.ui.app import build_chat_app

    with launched(build_chat_app(backend)) as served:
        yield served


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        yield patch


# Buttons of the Chatbot outside its messages (its toolbar) whose box meets the first one's.
ICONS_OVER_FIRST_MESSAGE = """() => {
  const first = document.querySelector('#chatbot .message-row').getBoundingClientRect();
  return [...document.querySelectorAll('#chatbot button')]
    .filter(b => !b.closest('.message-row') && b.offsetParent !== null)
    .map(b => b.getBoundingClientRect())
    .filter(r => r.left < first.right && first.left < r.right
                 && r.top < first.bottom && first.top < r.bottom).length; }"""


def no_error_overlay(page) -> None:
    assert page.locator(".toast-body.error, .error .status-tracker, .error-message").count() \
        == 0, page.inner_text("body")[:500]


def test_layout_send_becomes_stop_and_stats(browser, url):
    page = open_chat(browser, url)
    assert page.get_by_role("tab").count() == 0  # no lone "Chat" tab
    assert page.locator("#chatbot label").count() == 0  # no floating label
    top = page.locator("#max-tokens").bounding_box()
    assert top is not None and top["y"] + top["height"] < 900  # settings above the fold
    assert page.locator(SEND).is_visible() and not page.locator(STOP).is_visible()
    send(page, "an answer please")
    page.wait_for_selector(STOP, timeout=5_000)
    assert not page.locator(SEND).is_visible()
    finish(page, 30_000)
    page.wait_for_selector(SEND)
    assert not page.locator(STOP).is_visible()
    wait_for_text(page, BOT, "24 tokens")
    stats = texts(page, BOT)[-1]
    assert "tok/s" in stats and "first token" in stats, stats
    shoot(page, "chat-stats.png")


def test_empty_submit_and_refusals_are_chat_messages_that_keep_the_input(browser, url,
                                                                       ui_media):
    page = open_chat(browser, url)
    page.press("#chat-input textarea", "Enter")
    wait_for_text(page, BOT, "Type a message")
    no_error_overlay(page)
    # this model takes no video: the text and the attachment stay in the box
    send(page, "what happens here?", drop=[(ui_media / "clip.mp4", "video/mp4")],
         wait_busy=False)
    wait_for_text(page, BOT, "not video")
    no_error_overlay(page)
    assert box_text(page) == "what happens here?"
    assert page.locator("#chat-input .thumbnail-item").count() == 1
    assert page.locator(USER).count() == 0
    shoot(page, "chat-refusal.png", docs=True)


def test_a_failed_reply_puts_text_and_file_back(browser, url, ui_media):
    page = open_chat(browser, url)
    send(page, "please fail", upload=[ui_media / "photo.png"])
    wait_for_text(page, BOT, "'photo.png'")  # named as the user knows it, not its path
    finish(page)
    no_error_overlay(page)
    assert box_text(page) == "please fail"
    assert page.locator("#chat-input .thumbnail-item").count() == 1
    assert page.locator(USER).count() == 0  # the failed exchange left the history


def test_server_down_names_the_url(browser, url):
    page = open_chat(browser, url)
    send(page, "server down?")
    wait_for_text(page, BOT, "cannot reach the server at http://127.0.0.1:")
    finish(page)
    no_error_overlay(page)


def test_stop_before_the_first_token_then_a_follow_up(browser, url, backend):
    page = open_chat(browser, url)
    send(page, "slow one")
    page.wait_for_timeout(300)
    page.click(STOP)
    finish(page, 5_000)  # at once, not after the 3 s wait
    wait_for_text(page, BOT, "stopped before the first token")
    no_error_overlay(page)
    send(page, "and now?")
    finish(page)
    assert texts(page, USER) == ["slow one", "and now?"]  # two turns, not one merged bubble
    assert page.locator(BOT).count() == 2
    # the unanswered message is not sent again
    assert backend.seen[-1] == [{"role": "user", "content": "and now?"}]
    shoot(page, "chat-stopped.png")


def test_stop_mid_reply_keeps_it(browser, url):
    page = open_chat(browser, url)
    send(page, "long story")
    page.wait_for_function("window.replyLengths.some(n => n > 20)", timeout=10_000)
    page.click(STOP)
    finish(page, 5_000)
    wait_for_text(page, BOT, "stopped")
    stopped = texts(page, BOT)[-1]
    page.wait_for_timeout(800)
    assert texts(page, BOT)[-1] == stopped, "generation went on after Stop"
    assert "word1" in stopped and "24 tokens" not in stopped


def test_regenerate_edit_undo_and_reload(browser, url, backend):
    page = open_chat(browser, url)
    page.click("#new-chat")
    page.wait_for_function(f"document.querySelectorAll('{USER}').length === 0")
    send(page, "first question")
    finish(page)
    send(page, "second question")
    finish(page)
    calls = len(backend.seen)
    message_button(page, "Retry")
    page.wait_for_selector(BUSY, timeout=5_000)
    finish(page)
    assert len(backend.seen) == calls + 1 and texts(page, USER)[-1] == "second question"
    assert page.locator(BOT).count() == 2

    page.locator(USER).last.hover()
    message_button(page, "Edit")
    page.locator("#chatbot textarea").fill("second question, edited")
    calls = len(backend.seen)
    page.locator('#chatbot button[aria-label="Submit"]').click()
    wait_for_text(page, USER, "edited")
    deadline = time.monotonic() + 15  # the new reply has reached the backend, not just the page
    while len(backend.seen) == calls and time.monotonic() < deadline:
        time.sleep(0.05)
    finish(page)
    assert backend.seen[-1][-1] == {"role": "user", "content": "second question, edited"}
    assert page.locator(BOT).count() == 2
    assert not page.locator('#chatbot button[aria-label="Clear"]').is_visible()  # New chat
    assert not page.evaluate(ICONS_OVER_FIRST_MESSAGE)
    shoot(page, "chat.png", docs=True)

    page.reload()
    page.wait_for_selector(READY)
    wait_for_text(page, USER, "edited")
    assert texts(page, USER) == ["first question", "second question, edited"]
    assert page.locator(BOT).count() == 2

    message_button(page, "Undo")
    page.wait_for_function(f"document.querySelectorAll('{USER}').length === 1")
    assert box_text(page) == "second question, edited"
    page.reload()
    page.wait_for_selector(READY)
    page.wait_for_function(f"document.querySelectorAll('{USER}').length === 1")

    page.click("#new-chat")
    page.wait_for_function(f"document.querySelectorAll('{USER}').length === 0")
    page.reload()
    page.wait_for_selector(READY)
    page.wait_for_timeout(500)
    assert page.locator(USER).count() == 0


def test_dark_mode_follows_the_system(browser, url):
    page = open_chat(browser, url, color_scheme="dark")
    page.wait_for_function("document.querySelector('.dark') !== null", timeout=10_000)
    send(page, "hello in the dark")
    finish(page)
    shoot(page, "chat-dark.png", docs=True)
