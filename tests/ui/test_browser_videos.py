"""The Videos tab in Chromium against the ``/v1/videos`` stand-in (tests/ui/video_contract.py).

A job is followed from queued through running (stage: denoising, then decoding; progress)
to a playing video that joins the session's gallery; a cancelled job, a failed job and an
invalid size each say so in the status line, naming the model, and leave the last video
in place.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ui.browser import launched, shoot, wait_for_text
from tests.ui.video_contract import ContractState, running_contract_server

gr = pytest.importorskip("gradio")

STATUS = "#video-status"
# Records every status line shown, to see the job's states go by.
WATCH_STATUS = """() => { window.statuses = [];
  const box = document.querySelector('#video-status');
  new MutationObserver(() => window.statuses.push(box.innerText))
    .observe(box, {subtree: true, childList: true, characterData: true}); }"""


@pytest.fixture(scope="module")
def contract(ui_media) -> Iterator[tuple[ContractState, str]]:
    state = ContractState(video=(ui_media / "clip.mp4").read_bytes(), step=20)
    with running_contract_server(state) as server_url:
        yield state, server_url


@pytest.fixture(scope="module")
def url(chromium, contract) -> Iterator[str]:
    from vllm_mlx.ui.app import build_chat_app
    from vllm_mlx.ui.remote import RemoteBackend

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        with launched(build_chat_app(RemoteBackend.connect(contract[1]))) as served:
            yield served


def videos_page(browser, url):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(url)
    page.get_by_role("tab", name="Videos").click()
    page.wait_for_selector("#video-prompt textarea")
    page.evaluate(WATCH_STATUS)
    return page


def generate(page, prompt: str) -> None:
    page.fill("#video-prompt textarea", prompt)
    page.click("#video-generate")


def test_a_job_runs_to_a_video_in_the_gallery_then_cancel_and_failure(browser, url,
                                                                        contract):
    state, _ = contract
    page = videos_page(browser, url)
    generate(page, "a red ball rolling")
    page.wait_for_selector("#video-cancel", timeout=5_000)  # Generate turned into Cancel
    page.wait_for_selector("#video-result video", timeout=30_000)
    page.wait_for_function("document.querySelector('#video-result video').readyState >= 1")
    wait_for_text(page, STATUS, "Completed")
    seen = " ".join(page.evaluate("window.statuses"))
    assert "Running" in seen and "%" in seen, seen
    assert seen.index("denoising") < seen.index("decoding"), seen  # the job's stage shown
    assert "tiny-wan" in page.inner_text(STATUS)
    assert page.locator("#video-gallery video, #video-gallery img").count() >= 1
    assert state.forms[-1]["prompt"] == "a red ball rolling"
    assert state.forms[-1]["num_frames"] == "81" and state.forms[-1]["size"] == "832x480"

    generate(page, "a slow blue cube")
    wait_for_text(page, STATUS, "Running")
    page.click("#video-cancel")
    wait_for_text(page, STATUS, "Cancelled")
    page.wait_for_selector("#video-generate", timeout=5_000)
    assert state.deleted, "the cancelled job was not deleted on the server"
    assert page.locator("#video-result video").count() == 1  # the last video stays

    generate(page, "please fail")
    wait_for_text(page, STATUS, "Failed")
    assert "the model exploded" in page.inner_text(STATUS)
    table = page.inner_text("#video-jobs")
    assert all(word in table for word in ("Completed", "Cancelled", "Failed", "tiny-wan"))

    page.fill("#video-size input", "big")
    page.keyboard.press("Enter")
    generate(page, "a green cone")
    wait_for_text(page, STATUS, "Not sent")
    assert page.locator("#video-result video").count() == 1
    assert page.locator(".toast-body.error").count() == 0
    shoot(page, "videos.png", docs=True)
