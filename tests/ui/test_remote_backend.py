"""The remote backend against a real ``vllm-mlx serve tiny:qwen2_vl`` subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, start_server, stop_server
from vllm_mlx.ui.backend import BackendError, GenerationOptions, Usage
from vllm_mlx.ui.conversation import Conversation, user_turn
from vllm_mlx.ui.remote import STAGING_DIR, RemoteBackend, api_base, stage_file

pytest.importorskip("openai")
OPTIONS = GenerationOptions(max_tokens=5, temperature=0.0, video_fps=4.0, video_max_frames=4)


@pytest.fixture(scope="module")
def server_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-root")


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_root) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("ui-logs") / "server.log"
    started = start_server(["tiny:qwen2_vl", "--media-root", str(server_root)], log)
    yield started
    stop_server(started)


async def collect(backend: RemoteBackend, conversation: Conversation) -> list[str]:
    """The text pieces; the stream must end with the reply's token count."""
    items = [item async for item in backend.stream(conversation, OPTIONS)]
    assert isinstance(items[-1], Usage) and items[-1].completion_tokens >= 1
    return [item for item in items if isinstance(item, str)]


def test_api_base():
    assert api_base("http://h:1") == "http://h:1/v1"
    assert api_base("http://h:1/v1/") == "http://h:1/v1"


def test_connect_reads_the_model_card(server):
    backend = RemoteBackend.connect(server.base_url)
    assert backend.info.vision and backend.info.video and backend.info.random_weights
    assert backend.info.location == server.base_url
    assert backend.video_jobs is None  # this server has no video generation model


def test_unknown_model_or_server_is_an_error(server):
    with pytest.raises(BackendError, match="does not serve"):
        RemoteBackend.connect(server.base_url, model="no-such-model")
    with pytest.raises(BackendError, match="cannot use the server"):
        RemoteBackend.connect("http://127.0.0.1:9")


async def test_media_root_stages_each_file_once_and_sends_paths(server, server_root, ui_media):
    backend = RemoteBackend.connect(server.base_url, media_root=server_root)
    conv = Conversation().add(user_turn("see", [ui_media / "photo.png", ui_media / "clip.mp4"]))
    pieces = await collect(backend, conv)
    assert "".join(pieces)
    staged = sorted((server_root / STAGING_DIR).iterdir())
    assert sorted(p.suffix for p in staged) == [".mp4", ".png"]
    conv = conv.with_reply("".join(pieces)).add(user_turn("more", [ui_media / "photo.png"]))
    messages = backend.messages(conv, OPTIONS)
    urls = [p.get("image_url", {}).get("url") or p.get("video") for m in messages
            if isinstance(m["content"], list) for p in m["content"] if p["type"] != "text"]
    assert len(urls) == 3 and all(Path(u).parent == server_root / STAGING_DIR for u in urls)
    assert len(list((server_root / STAGING_DIR).iterdir())) == 2  # same photo, same copy
    assert (await collect(backend, conv))


async def test_without_media_root_data_urls_travel_once(server, ui_media):
    backend = RemoteBackend.connect(server.base_url)
    conv = Conversation().add(user_turn("see", [ui_media / "clip.mp4"]))
    assert (await collect(backend, conv))
    conv = conv.with_reply("ok").add(user_turn("and?", []))
    first = backend.messages(conv, OPTIONS)[0]["content"][0]
    assert first == {"type": "text", "text": "[video 'clip.mp4' attached earlier]"}
    assert (await collect(backend, conv))


async def test_server_errors_reach_the_user(server, ui_media, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes((ui_media / "photo.png").read_bytes()[:40])
    backend = RemoteBackend.connect(server.base_url)
    with pytest.raises(BackendError) as caught:
        await collect(backend, Conversation().add(user_turn("x", [broken])))
    message = str(caught.value)
    assert "Error code" not in message and "image" in message.lower(), message


async def test_errors_about_staged_copies_name_the_users_file(server, server_root, ui_media,
                                                               tmp_path):
    broken = tmp_path / "holiday.png"
    broken.write_bytes((ui_media / "photo.png").read_bytes()[:40])
    backend = RemoteBackend.connect(server.base_url, media_root=server_root)
    with pytest.raises(BackendError) as caught:
        await collect(backend, Conversation().add(user_turn("x", [broken])))
    message = str(caught.value)
    assert "'holiday.png'" in message and STAGING_DIR not in message, message


def test_stage_file_keeps_files_already_under_the_root(server_root):
    inside = server_root / "already.png"
    inside.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert stage_file(inside, server_root) == inside.resolve()


async def test_a_server_that_is_down_is_named_by_its_url():
    from openai import AsyncOpenAI

    from vllm_mlx.ui.backend import BackendInfo

    url = "http://127.0.0.1:9"
    backend = RemoteBackend(AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0),
                            "m", BackendInfo("m", False, False, url))
    with pytest.raises(BackendError, match=f"cannot reach the server at {url}"):
        await collect(backend, Conversation().add(user_turn("hi", [])))
