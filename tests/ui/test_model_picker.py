"""The model dropdown (issue 24): the remote backend against a live server of three tiny
models, and the page built on it, without a browser (tests/ui/test_browser_models.py
drives it in Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.ui.several_models import MODELS, greedy, states, three_model_server
from vllm_mlx.ui.backend import BackendError, BackendInfo, GenerationOptions, ModelOption, Usage
from vllm_mlx.ui.conversation import Conversation, user_turn
from vllm_mlx.ui.remote import RemoteBackend, model_option

gr = pytest.importorskip("gradio")
pytest.importorskip("openai")

from vllm_mlx.ui.app import build_chat_app  # noqa: E402
from vllm_mlx.ui.model_picker import ModelPicker, page_for  # noqa: E402

PROMPT = "Tell me about lighthouses."


@pytest.fixture(scope="module")
def url(engine_for, tmp_path_factory) -> Iterator[str]:
    with three_model_server(engine_for("qwen3"), tmp_path_factory.mktemp("models")) as served:
        yield served


def blocks_of(demo, kind):
    return [b for b in demo.blocks.values() if isinstance(b, kind)]


def test_labels_name_the_kind_and_state():
    text = BackendInfo("tiny:qwen3", vision=False, video=False, location="x")
    vision = BackendInfo("vl", vision=True, video=False, location="x", video_known=False)
    assert ModelOption(vision, "available").label() == "vl (vision, not loaded)"
    assert ModelOption(text, "loaded", default=True).label() == "tiny:qwen3 (text, loaded, default)"
    assert ModelOption(vision, "failed").label() == "vl (vision, failed to load)"
    # video support of a vision model that is not loaded is unknown: the server decides
    assert vision.takes_video and "known once it is loaded" in vision.describe()
    assert not text.takes_video


def card(state: str, kind: str | None, vision: bool = False, video: bool = False) -> dict:
    return {"id": "m", "state": state, "kind": kind, "default": False,
            "capabilities": {"vision": vision, "video": video}}


def test_cards_of_models_not_loaded_are_read_cautiously():
    loaded_text = model_option(card("loaded", "text"), "u")
    assert loaded_text.info.vision_known and not loaded_text.info.vision
    assert loaded_text.label() == "m (text, loaded)"
    loaded_vl = model_option(card("loaded", "vision", vision=True, video=False), "u").info
    assert loaded_vl.vision and not loaded_vl.takes_video  # known: no video
    waiting_vl = model_option(card("available", "vision", vision=True), "u")
    assert waiting_vl.info.takes_video and waiting_vl.label() == "m (vision, not loaded)"
    unknown = model_option(card("available", None), "u")  # config not readable before loading
    assert unknown.info.vision and unknown.info.takes_video  # the server decides
    assert unknown.label() == "m (not loaded)"
    assert "known once it is loaded" in unknown.info.describe()


def test_the_backend_lists_every_model_with_its_state(url):
    backend = RemoteBackend.connect(url)
    assert backend.info.model == "tiny:qwen3" and not backend.info.vision
    options = backend.model_options()
    assert [o.id for o in options] == MODELS
    assert [o.default for o in options] == [True, False, False]
    assert [o.state for o in options] == ["loaded", "available", "available"]
    assert options[0].label() == "tiny:qwen3 (text, loaded, default)"
    assert httpx.post(f"{url}/v1/models/vl/load", timeout=120).status_code == 200
    vl = next(o for o in backend.model_options() if o.id == "vl")
    assert vl.label() == "vl (vision, loaded)"
    assert vl.info.vision and vl.info.video and vl.info.vision_known


async def test_a_reply_comes_from_the_chosen_model(url, engine_for):
    backend = RemoteBackend.connect(url)
    options = GenerationOptions(max_tokens=6, temperature=0.0, model="tiny:llama")
    items = [i async for i in backend.stream(Conversation().add(user_turn(PROMPT, [])),
                                             options)]
    assert isinstance(items[-1], Usage)
    text = "".join(i for i in items if isinstance(i, str))
    assert text == greedy(engine_for("llama"), PROMPT, 6)
    assert states(url)["tiny:llama"] == "loaded"
    llama = next(o for o in backend.model_options() if o.id == "tiny:llama")
    assert llama.label() == "tiny:llama (text, loaded)"


async def test_an_unknown_model_is_a_readable_error(url):
    backend = RemoteBackend.connect(url)
    options = GenerationOptions(max_tokens=2, model="no-such-model")
    with pytest.raises(BackendError, match="tiny:llama"):  # the message names what is served
        [i async for i in backend.stream(Conversation().add(user_turn("hi", [])), options)]


def test_the_page_has_a_dropdown_with_the_default_chosen(url):
    demo = build_chat_app(RemoteBackend.connect(url))
    (dropdown,) = blocks_of(demo, gr.Dropdown)
    assert dropdown.value == "tiny:qwen3"
    labels = [label for label, _ in dropdown.choices]
    assert labels[0] == "tiny:qwen3 (text, loaded, default)"
    assert {"tiny:llama", "vl"} <= {value for _, value in dropdown.choices}
    (box,) = blocks_of(demo, gr.MultimodalTextbox)
    assert box.sources == []  # the default is text-only: no upload button


def test_choosing_a_model_changes_what_the_page_accepts(url):
    picker = ModelPicker.of(RemoteBackend.connect(url))
    assert picker is not None
    for model in ("vl", "tiny:llama"):  # loaded, so their cards say exactly what they take
        assert httpx.post(f"{url}/v1/models/{model}/load", timeout=120).status_code == 200
    picker.refresh()
    header, box, fps, frames = page_for(picker.info("vl"), "t")
    assert "`vl`" in header and "sees images and video" in header
    assert box.sources == ["upload"] and fps.visible and frames.visible
    header, box, fps, frames = page_for(picker.info("tiny:llama"), "t")
    assert "text only" in header and box.sources == [] and not fps.visible
    assert picker.info("not-listed") == picker.fallback


@dataclass
class OneModel:
    """A backend that is not a model menu (as the in-process one)."""

    info: BackendInfo
    video_jobs: None = None

    async def stream(self, conversation, options):  # pragma: no cover - not called
        yield ""

    def close(self) -> None:
        pass


@dataclass
class OneModelMenu(OneModel):
    def model_options(self) -> list[ModelOption]:
        return [ModelOption(self.info, "loaded", True)]


def test_one_model_means_no_dropdown():
    info = BackendInfo("m", vision=True, video=True, location="in-process")
    for backend in (OneModel(info), OneModelMenu(info)):
        assert ModelPicker.of(backend) is None
        assert blocks_of(build_chat_app(backend), gr.Dropdown) == []
