"""Helpers for the Playwright + Chromium tests of ``vllm-mlx-chat`` (no tests here).

They drive the page as a person would: type, press Enter, drop files, click the Chatbot's
message buttons (their aria-labels), and read what is shown.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.e2e.conftest import free_port

ARTIFACTS = REPO / "artifacts" / "ui"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking"]
# A row holds one turn: a reply with its stats line, a message with its attachments.
BOT = "#chatbot .bot-row"
USER = "#chatbot .user-row"
READY = "#chat-input textarea:not([disabled])"
BUSY = "#chat-input textarea[disabled]"
SEND = '#chat-input button:has-text("Send")'
STOP = '#chat-input button:has-text("Stop")'
# Records the length of the newest reply at every DOM change, to see it grow token by token.
WATCH_REPLY = """() => {
  window.replyLengths = [];
  new MutationObserver(() => {
    const bots = document.querySelectorAll('#chatbot .bot-row');
    window.replyLengths.push(bots.length ? bots[bots.length - 1].innerText.length : 0);
  }).observe(document.querySelector('#chatbot'),
             {subtree: true, childList: true, characterData: true});
}"""


def chromium_path() -> str | None:
    candidates = [os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def open_chat(browser, url: str, **context):
    options = {"viewport": {"width": 1280, "height": 900}, **context}
    page = browser.new_context(**options).new_page()
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


def attach(page, upload: Sequence[Path] = (), drop: Sequence[tuple[Path, str]] = ()) -> None:
    if upload:
        page.set_input_files("#chat-input input[type=file]", [str(f) for f in upload])
    for path, mime in drop:
        drop_file(page, path, mime)
    expected = len(upload) + len(drop)
    if expected:
        page.wait_for_function(
            f"document.querySelectorAll('#chat-input .thumbnail-item').length === {expected}",
            timeout=10_000)


def send(page, text: str, upload: Sequence[Path] = (),
         drop: Sequence[tuple[Path, str]] = (), wait_busy: bool = True) -> None:
    attach(page, upload, drop)
    replies = page.locator(BOT).count()
    page.fill("#chat-input textarea", text)
    page.press("#chat-input textarea", "Enter")
    if wait_busy:  # generating, or (a fast reply on a loaded machine) already answered
        page.wait_for_function(
            "([busy, bot, before]) => document.querySelector(busy) !== null"
            " || document.querySelectorAll(bot).length > before",
            arg=[BUSY, BOT, replies], timeout=10_000)


def set_slider(page, elem_id: str, value: float) -> None:
    number = page.locator(f"#{elem_id} input[type=number]")
    number.fill(str(value))
    number.press("Enter")


def finish(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_selector(READY, timeout=timeout_ms)


def reply_lengths(page) -> list[int]:
    return list(page.evaluate("window.replyLengths"))


def texts(page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def wait_for_text(page, selector: str, needle: str, timeout_ms: int = 15_000) -> None:
    page.wait_for_function(
        """([selector, needle]) => [...document.querySelectorAll(selector)]
             .some(e => e.innerText.includes(needle))""", arg=[selector, needle],
        timeout=timeout_ms)


def box_text(page) -> str:
    return str(page.input_value("#chat-input textarea"))


def message_button(page, label: str) -> None:
    """Click the last of the Chatbot's message buttons with this aria-label."""
    page.locator(f'#chatbot button[aria-label="{label}"]').last.click()


def shoot(page, name: str, docs: bool = False) -> None:
    """A screenshot in artifacts/ui/ and, with ``docs``, a small copy in docs/ (the
    README shows those)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
    if docs:  # kept small for the repository: 800 px wide, 64 colours
        from PIL import Image

        (REPO / "docs").mkdir(exist_ok=True)
        with Image.open(ARTIFACTS / name) as shot:
            small = shot.convert("RGB").resize((800, round(shot.height * 800 / shot.width)),
                                               Image.Resampling.LANCZOS)
            small.quantize(64).save(REPO / "docs" / name, optimize=True)


def wait_until_up(url: str, alive, log: Path | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            detail = log.read_text(errors="replace") if log else ""
            raise RuntimeError(f"vllm-mlx-chat exited early:\n{detail}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"vllm-mlx-chat did not come up at {url}")


@contextmanager
def launched(demo) -> Iterator[str]:
    """Serve a Blocks app in this process; yields its URL."""
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                        quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
