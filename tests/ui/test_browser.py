"""``vllm-mlx-chat --model tiny:qwen2_vl`` driven in headless Chromium with Playwright.

Needs Debian's ``chromium`` (``.ci/run`` installs it where apt works) and the ``playwright``
and ``gradio`` packages; skipped, with the reason, only where Chromium is not installed.
Playwright's own browser download is never used: it launches the system Chromium.
An image is uploaded and a video dragged and dropped; screenshots go to ``artifacts/ui/``
(chat-media.png, also in docs/, and second-session.png). The page's behaviour (errors,
Stop, regenerate / edit / undo, reload) is tested on a scripted backend in
test_browser_chat.py, the Videos tab in test_browser_videos.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import TINY_CACHE
from tests.e2e.conftest import free_port
from tests.ui.browser import (
    ARTIFACTS,
    BOT,
    USER,
    finish,
    open_chat,
    reply_lengths,
    send,
    set_slider,
    shoot,
    texts,
    wait_for_text,
    wait_until_up,
)


@pytest.fixture(scope="module")
def chat_url(chromium, tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("chat-ui")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp / "uploads")}
    log = tmp / "chat.log"
    command = [sys.executable, "-m", "vllm_mlx.ui.cli", "--model", "tiny:qwen2_vl",
               "--tiny-cache-dir", str(TINY_CACHE), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, lambda: process.poll() is None, log)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "chat-server.log")


def test_chat_in_a_real_browser(browser, chat_url, ui_media):
    alice = open_chat(browser, chat_url)
    assert "tiny:qwen2_vl" in alice.inner_text("#model-info")
    assert "sees images and video" in alice.inner_text("#model-info")
    # Greedy and short: a random-weight reply can contain the text '<|image_pad|>', which
    # the engine currently mistakes for an image placeholder when the history is re-sent.
    set_slider(alice, "temperature", 0)
    set_slider(alice, "max-tokens", 48)

    send(alice, "What is in this picture and this video?", upload=[ui_media / "photo.png"],
         drop=[(ui_media / "clip.mp4", "video/mp4")])
    finish(alice)
    grown = sorted({n for n in reply_lengths(alice) if n > 0})
    assert len(grown) >= 3, f"the reply did not stream: lengths {grown}"
    wait_for_text(alice, BOT, "first token")  # the stats line, with the engine's token count
    assert "tokens" in texts(alice, BOT)[-1] and "tok/s" in texts(alice, BOT)[-1]
    assert alice.locator(f"{USER} img").count() >= 1
    # the video shows as a player with its first frame, and its name
    alice.wait_for_function(
        "document.querySelector('#chatbot .user-row video')?.readyState >= 2", timeout=10_000)
    assert "clip.mp4" in alice.inner_text(USER)
    shoot(alice, "chat-media.png", docs=True)

    send(alice, "And once more, briefly?")
    finish(alice)
    assert alice.locator(BOT).count() == 2

    # Another browser session starts empty and never sees Alice's turns.
    bob = open_chat(browser, chat_url)
    assert bob.locator(USER).count() == 0 and bob.locator(BOT).count() == 0
    send(bob, "hello")
    finish(bob)
    assert (bob.locator(USER).count(), bob.locator(BOT).count()) == (1, 1)
    assert bob.locator(f"{USER} img").count() == 0
    assert alice.locator(BOT).count() == 2
    shoot(bob, "second-session.png")
