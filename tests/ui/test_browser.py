"""``vllm-mlx-chat --model tiny:qwen2_vl`` driven in headless Chromium with Playwright.

Needs Debian's ``chromium`` (``.ci/run`` installs it where apt works) and the ``playwright``
and ``gradio`` packages; skipped, with the reason, only where Chromium is not installed.
Playwright's own browser download is never used: it launches the system Chromium.
An image is uploaded and a video dragged and dropped; screenshots go to ``artifacts/ui/``
(chat.png, second-session.png, videos.png).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, TINY_CACHE
from tests.e2e.conftest import free_port

ARTIFACTS = REPO / "artifacts" / "ui"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking"]
BOT = '#chatbot [data-testid="bot"]'
USER = '#chatbot [data-testid="user"]'
READY = "#chat-input textarea:not([disabled])"
# Records the length of the newest reply at every DOM change, to see it grow token by token.
WATCH_REPLY = """() => {
  window.replyLengths = [];
  new MutationObserver(() => {
    const bots = document.querySelectorAll('#chatbot [data-testid="bot"]');
    window.replyLengths.push(bots.length ? bots[bots.length - 1].innerText.length : 0);
  }).observe(document.querySelector('#chatbot'),
             {subtree: true, childList: true, characterData: true});
}"""


def chromium_path() -> str | None:
    candidates = [os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def require(module: str) -> None:
    """Skip without the package on a developer machine; in CI its absence is a failure."""
    if os.environ.get("CI"):
        __import__(module)
    else:
        pytest.importorskip(module, reason=f"pip install {module} to run the browser test")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does this "
                    "where apt is usable)")
    require("gradio")
    require("playwright")
    return path


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
        wait_until_up(process, url, log)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "chat-server.log")


def wait_until_up(process: subprocess.Popen, url: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vllm-mlx-chat exited early:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"vllm-mlx-chat did not come up:\n{log.read_text(errors='replace')}")


def open_chat(browser, url: str):
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.goto(url)
    page.wait_for_selector(READY, timeout=30_000)
    page.evaluate(WATCH_REPLY)
    return page


def drop_file(page, path: Path, mime: str) -> None:
    """Drag-and-drop ``path`` onto the chat input, as a browser does (DataTransfer events)."""
    payload = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([data, name, mime]) => {
             const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
             const transfer = new DataTransfer();
             transfer.items.add(new File([bytes], name, {type: mime}));
             return transfer; }""", [payload, path.name, mime])
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event("#chat-input textarea", event, {"dataTransfer": transfer})


def send(page, text: str, upload: Sequence[Path] = (),
         drop: Sequence[tuple[Path, str]] = ()) -> None:
    if upload:
        page.set_input_files("#chat-input input[type=file]", [str(f) for f in upload])
    for path, mime in drop:
        drop_file(page, path, mime)
    expected = len(upload) + len(drop)
    if expected:
        page.wait_for_function(
            f"document.querySelectorAll('#chat-input .thumbnail-item').length === {expected}",
            timeout=10_000)
    page.fill("#chat-input textarea", text)
    page.press("#chat-input textarea", "Enter")
    page.wait_for_selector("#chat-input textarea[disabled]", timeout=10_000)


def set_slider(page, elem_id: str, value: float) -> None:
    if not page.locator(f"#{elem_id}").is_visible():
        page.get_by_text("Generation settings").click()
    number = page.locator(f"#{elem_id} input[type=number]")
    number.fill(str(value))
    number.press("Enter")


def settled_reply(page, quiet_ms: int = 600, timeout_s: float = 10) -> str:
    """The newest reply once it has not changed for ``quiet_ms``."""
    deadline = time.monotonic() + timeout_s
    text = page.locator(BOT).last.inner_text()
    while time.monotonic() < deadline:
        page.wait_for_timeout(quiet_ms)
        now = page.locator(BOT).last.inner_text()
        if now == text:
            return text
        text = now
    raise AssertionError("the reply kept changing after Stop")


def finish(page) -> None:
    page.wait_for_selector(READY, timeout=60_000)


def reply_lengths(page) -> list[int]:
    return list(page.evaluate("window.replyLengths"))


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


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
    assert alice.locator(BOT).last.inner_text().strip()
    assert alice.locator(f"{USER} img").count() >= 1
    assert alice.locator(f"{USER} video").count() >= 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    alice.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

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
    bob.screenshot(path=str(ARTIFACTS / "second-session.png"), full_page=True)


def test_stop_keeps_the_partial_reply_and_clear_empties(browser, chat_url):
    page = open_chat(browser, chat_url)
    set_slider(page, "max-tokens", 4096)
    send(page, "Tell me a very long story.")
    page.wait_for_function("window.replyLengths.some(n => n > 0)", timeout=30_000)
    page.click("#stop-button")
    finish(page)  # Stop gives the textbox back at once
    stopped = settled_reply(page)  # an update already on the wire may still land
    page.wait_for_timeout(2000)
    assert page.locator(BOT).last.inner_text() == stopped, "generation went on after Stop"
    assert stopped.strip()

    set_slider(page, "max-tokens", 8)
    send(page, "next")
    finish(page)
    # the partial reply stayed in this session's history
    assert page.locator(BOT).count() == 2
    assert page.locator(BOT).first.inner_text() == stopped

    page.click("#clear-button")
    page.wait_for_function(
        "document.querySelectorAll('#chatbot [data-testid=\"bot\"]').length === 0")


def test_a_broken_video_shows_an_error_and_gives_the_input_back(browser, chat_url, tmp_path,
                                                                 ui_media):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((ui_media / "clip.mp4").read_bytes()[:300])
    page = open_chat(browser, chat_url)
    send(page, "what is this?", drop=[(broken, "video/mp4")])
    page.wait_for_selector(".toast-body", timeout=30_000)
    assert "video" in page.inner_text(".toast-body").lower()
    finish(page)
    assert page.locator(BOT).count() == 0


def test_videos_tab_follows_a_job_to_a_playing_video(browser, monkeypatch, ui_media):
    """The tab against the ``/v1/videos`` stand-in (the real jobs API is built elsewhere)."""
    from tests.ui.video_contract import ContractState, running_contract_server
    from vllm_mlx.ui.app import build_chat_app
    from vllm_mlx.ui.remote import RemoteBackend

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    state = ContractState(video=(ui_media / "clip.mp4").read_bytes(), step=20)
    with running_contract_server(state) as server_url:
        demo = build_chat_app(RemoteBackend.connect(server_url))
        port = free_port()
        demo.queue().launch(server_name="127.0.0.1", server_port=port,
                            prevent_thread_lock=True, quiet=True)
        try:
            page = browser.new_context().new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="Videos").click()
            page.fill("#video-prompt textarea", "a red ball rolling")
            page.evaluate("""() => { window.progress = [];
              const box = document.querySelector('#video-result');
              new MutationObserver(() => window.progress.push(box.innerText))
                .observe(box, {subtree: true, childList: true, characterData: true}); }""")
            page.click("#video-generate")
            page.wait_for_selector("#video-result video", timeout=30_000)
            page.wait_for_function(
                "document.querySelector('#video-result video').readyState >= 1")
            assert page.evaluate("document.querySelector('#video-result video').duration") > 0
            seen = " ".join(page.evaluate("window.progress"))
            # Updates that land in one frame render once, so any one value may be skipped.
            shown = {float(p) for p in re.findall(r"(\d+\.\d)%", seen)}
            assert "in progress" in seen and shown & {20.0, 40.0, 60.0, 80.0}, seen
            assert "completed" in page.inner_text("#video-status")
            page.screenshot(path=str(ARTIFACTS / "videos.png"), full_page=True)
        finally:
            demo.close()
    assert state.forms[0]["prompt"] == "a red ball rolling"
    assert state.forms[0]["num_frames"] == "81" and state.forms[0]["size"] == "832x480"
