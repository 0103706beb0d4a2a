"""The model dropdown in Chromium (issue 24), on a live server of three tiny models: the
default preselected, the upload button following the chosen model, a message to a model
not loaded yet loading it and being answered by it, its entry turning "loaded".

(Before a ``tiny:`` model is loaded the server may not know its kind; the page then lets
it take uploads, so the upload button of the text model goes only once it is loaded.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ui.browser import BOT, USER, finish, launched, open_chat, send, shoot, texts
from tests.ui.several_models import states, three_model_server

gr = pytest.importorskip("gradio")

UPLOAD = "#chat-input input[type=file]"
PICKER = "#model-picker input"


@pytest.fixture(scope="module")
def url(chromium, engine_for, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(chat page URL, server URL)."""
    from vllm_mlx.ui.app import build_chat_app
    from vllm_mlx.ui.remote import RemoteBackend

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        server_context = three_model_server(engine_for("qwen3"), tmp_path_factory.mktemp("m"))
        with server_context as server, launched(
                build_chat_app(RemoteBackend.connect(server))) as page_url:
            yield page_url, server


def choose(page, label_start: str) -> None:
    page.click(PICKER)
    page.get_by_role("option").filter(has_text=label_start).first.click()


def option_labels(page) -> list[str]:
    page.click(PICKER)
    page.get_by_role("option").first.wait_for()
    labels = [t.strip() for t in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    return labels


def test_the_dropdown_switches_the_model_and_what_the_box_takes(browser, url):
    page_url, server = url
    page = open_chat(browser, page_url)
    assert page.input_value(PICKER) == "tiny:qwen3 (text, loaded, default)"
    assert "text only" in page.inner_text("#model-info")
    assert page.locator(UPLOAD).count() == 0  # a text model: no upload button
    choose(page, "vl (")
    page.wait_for_function("document.querySelector('#model-info').innerText.includes('vl')",
                           timeout=10_000)
    page.wait_for_selector(UPLOAD, state="attached", timeout=10_000)
    choose(page, "tiny:llama (")
    assert states(server)["tiny:llama"] == "available"
    send(page, "hello, llama")
    finish(page, 120_000)  # the first message loads the model
    # a reply (random weights: maybe "no tokens"), not a failure, which would take the
    # message out of the chat and show why
    assert texts(page, USER) == ["hello, llama"] and "tokens" in texts(page, BOT)[-1]
    assert states(server)["tiny:llama"] == "loaded"  # the reply came from the chosen model
    page.wait_for_function(
        "document.querySelector('#model-picker input').value === 'tiny:llama (text, loaded)'",
        timeout=10_000)
    # loaded, its card says it is a text model: the upload button goes
    page.wait_for_selector(UPLOAD, state="detached", timeout=10_000)
    shoot(page, "chat-models.png")
    assert "tiny:qwen3 (text, loaded, default)" in option_labels(page)
