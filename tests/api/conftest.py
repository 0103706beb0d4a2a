"""An in-process app on a real tiny-model engine, plus media files to send it."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from vllm_mlx.config import Settings


def png_bytes(seed: int = 0, size=(64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    from vllm_mlx.media.testing import write_test_video

    root = tmp_path_factory.mktemp("media")
    (root / "photo.png").write_bytes(png_bytes(1))
    (root / "other.png").write_bytes(png_bytes(2, (40, 40)))
    write_test_video(root / "clip.mp4", seconds=3, fps=10, size=(64, 48))
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 500)
    (root / "corrupt.png").write_bytes(png_bytes(3)[:60])
    return root


def make_client(engine, media_dir: Path, **overrides) -> TestClient:
    from vllm_mlx.api.app import create_app

    settings = Settings(model=str(engine.model.reference), served_model_name="tiny-vl",
                        media_roots=(media_dir,), **overrides)
    return TestClient(create_app(settings, engine))


@pytest.fixture(scope="session")
def vl_client(engine_for, media_dir):
    with make_client(engine_for("qwen2_vl"), media_dir) as client:
        yield client
