"""The in-process backend on a tiny random-weight engine: streaming, media reuse, errors."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from vllm_mlx.ui.backend import BackendError, GenerationOptions, Usage
from vllm_mlx.ui.conversation import Conversation, user_turn
from vllm_mlx.ui.local import DecodedMediaCache, InProcessBackend

OPTIONS = GenerationOptions(max_tokens=6, temperature=0.0, video_fps=4.0, video_max_frames=4)


@pytest.fixture(scope="module")
def backend(engine_for, ui_media):
    return InProcessBackend(engine_for("qwen2_vl"), "tiny:qwen2_vl", (ui_media,),
                            DecodedMediaCache())


async def collect(backend, conversation, options=OPTIONS) -> list[str]:
    """The text pieces; the stream must end with the reply's token count."""
    items = [item async for item in backend.stream(conversation, options)]
    assert isinstance(items[-1], Usage) and items[-1].completion_tokens >= len(items) - 1
    return [item for item in items if isinstance(item, str)]


def test_info_describes_the_model(backend):
    info = backend.info
    assert (info.vision, info.video, info.random_weights) == (True, True, True)
    assert backend.video_jobs is None
    assert "sees images and video" in info.describe() and "Random weights" in info.describe()


def test_streams_a_reply_and_reuses_decoded_media(backend, ui_media):
    turn = user_turn("compare", [ui_media / "photo.png", ui_media / "second.png",
                                 ui_media / "clip.mp4"])
    conv = Conversation().add(turn)
    pieces = asyncio.run(collect(backend, conv))
    assert pieces and all(isinstance(p, str) for p in pieces)
    misses, hits = backend.cache.misses, backend.cache.hits
    conv = conv.with_reply("".join(pieces)).add(user_turn("again", []))
    assert asyncio.run(collect(backend, conv))
    assert backend.cache.misses == misses  # nothing decoded twice
    assert backend.cache.hits == hits + 3
    # different frame sampling is a different decode
    asyncio.run(collect(backend, conv, GenerationOptions(max_tokens=2, video_fps=2.0,
                                                         video_max_frames=2)))
    assert backend.cache.misses == misses + 1


def test_same_request_as_the_engine_sees_it(backend, ui_media):
    conv = Conversation().add(user_turn("what", [ui_media / "clip.mp4"]))
    request = backend.build_request(conv, OPTIONS)
    video = request.messages[0].content[0].video
    assert video.num_frames == 4  # 1 s at 4 fps, at most 4
    assert request.sampling.max_tokens == 6


def test_files_outside_the_media_roots_are_refused(backend, ui_media, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(ui_media / "photo.png", outside)
    conv = Conversation().add(user_turn("x", [outside]))
    with pytest.raises(BackendError):
        asyncio.run(collect(backend, conv))


def test_a_corrupt_video_is_a_backend_error(backend, ui_media):
    broken = ui_media / "broken.mp4"
    broken.write_bytes((ui_media / "clip.mp4").read_bytes()[:200])
    with pytest.raises(BackendError):
        asyncio.run(collect(backend, Conversation().add(user_turn("x", [broken]))))


def test_leaving_early_cancels_and_the_engine_goes_on(backend):
    # One event loop for both, as in the Gradio server (a loop lives as long as the app).
    async def scenario() -> tuple[str, list[str]]:
        stream = backend.stream(Conversation().add(user_turn("long", [])),
                                GenerationOptions(max_tokens=4000))
        first = await anext(stream)
        await stream.aclose()
        # the cancelled job must not hold the engine for 4000 tokens
        after = await asyncio.wait_for(
            collect(backend, Conversation().add(user_turn("next", []))), timeout=30)
        return first, after

    first, after = asyncio.run(scenario())
    assert first and after


def test_cache_is_bounded_by_bytes():
    from PIL import Image

    from vllm_mlx.engine.types import ImagePart

    cache = DecodedMediaCache(max_bytes=2 * 10 * 10 * 3)
    for key in ("a", "b", "c"):
        cache.get_or_decode((key,), lambda: ImagePart(Image.new("RGB", (10, 10))))
    assert len(cache) == 2 and cache.misses == 3
    cache.get_or_decode(("c",), lambda: pytest.fail("decoded again"))
    assert cache.hits == 1
