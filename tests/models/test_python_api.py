"""Seed 004's Python API example runs as written (on a tiny model), and its outputs are
the engine's outputs (so they inherit the mlx-vlm parity)."""

from __future__ import annotations

import pytest

from tests.api.conftest import png_bytes


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from vllm_mlx.media.testing import write_test_video

    root = tmp_path_factory.mktemp("pyapi")
    (root / "photo.jpg").write_bytes(png_bytes(21))
    (root / "img1.jpg").write_bytes(png_bytes(22))
    (root / "img2.jpg").write_bytes(png_bytes(23, (32, 40)))
    write_test_video(root / "video.mp4", seconds=3, fps=8, size=(64, 48))
    return root


@pytest.fixture(scope="module")
def mllm(tiny_model):
    from vllm_mlx.models import MLXMultimodalLM

    model = MLXMultimodalLM(str(tiny_model("qwen2_vl")))
    model.load()
    yield model
    model.close()


def test_seed_example(mllm, files, monkeypatch):
    monkeypatch.chdir(files)
    description = mllm.describe_image("photo.jpg", max_tokens=8)
    assert isinstance(description, str) and description
    video = mllm.describe_video("video.mp4", fps=2.0, max_tokens=8)
    assert isinstance(video, str) and video
    output = mllm.generate(prompt="Compare these images", images=["img1.jpg", "img2.jpg"],
                           max_tokens=8)
    assert output.text and output.prompt_tokens > 20


def test_video_fps_changes_frames(mllm, files):
    few = mllm.generate("Describe", videos=[str(files / "video.mp4")], video_fps=1.0,
                        video_max_frames=2, max_tokens=2)
    many = mllm.generate("Describe", videos=[str(files / "video.mp4")], video_fps=2.0,
                         video_max_frames=6, max_tokens=2)
    assert many.prompt_tokens > few.prompt_tokens


def test_stream_generate_equals_generate(mllm, files):
    image = str(files / "photo.jpg")
    whole = mllm.generate("What is this?", images=[image], max_tokens=10).text
    assert "".join(mllm.stream_generate("What is this?", images=[image], max_tokens=10)) == whole


def test_pil_images_and_lone_paths(mllm, files):
    from PIL import Image

    path = files / "photo.jpg"
    expected = mllm.generate("What is this?", images=[str(path)], max_tokens=6)
    with Image.open(path) as image:
        assert mllm.generate("What is this?", images=[image], max_tokens=6).token_ids == \
            expected.token_ids
        assert mllm.describe_image(image, "What is this?", max_tokens=6) == expected.text
    assert mllm.generate("What is this?", images=str(path), max_tokens=6).token_ids == \
        expected.token_ids
    assert mllm.generate("What is this?", images=path, max_tokens=6).token_ids == expected.token_ids
    with pytest.raises(TypeError, match="PIL image"):
        mllm.generate("What is this?", images=[42])


def test_pil_images_png_cannot_store_are_read_as_rgb(mllm):
    """A float ("F") or CMYK image used to fail inside Pillow's PNG writer."""
    import numpy as np
    from PIL import Image

    grey = np.linspace(0, 255, 48 * 32, dtype=np.float32).reshape(32, 48)
    as_float = Image.fromarray(grey, mode="F")
    as_rgb = as_float.convert("RGB")
    expected = mllm.generate("What is this?", images=[as_rgb], max_tokens=4).token_ids
    assert mllm.generate("What is this?", images=[as_float], max_tokens=4).token_ids == expected
    cmyk = as_rgb.convert("CMYK")
    assert mllm.generate("What is this?", images=[cmyk], max_tokens=4).token_ids == \
        mllm.generate("What is this?", images=[cmyk.convert("RGB")], max_tokens=4).token_ids


def test_chat_with_messages(mllm):
    result = mllm.chat([{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi"}], max_tokens=5)
    assert result.finish_reason in ("stop", "length") and result.completion_tokens <= 5


def test_text_model_through_python_api(tiny_model):
    from vllm_mlx.models import MLXMultimodalLM

    with MLXMultimodalLM(str(tiny_model("qwen3"))) as lm:
        assert not lm.is_vision
        assert lm.generate("Hello", max_tokens=4).completion_tokens <= 4
