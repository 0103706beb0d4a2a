"""Fixtures for the chat UI tests: small media files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import png_bytes


@pytest.fixture(scope="session")
def ui_media(tmp_path_factory) -> Path:
    from vllm_mlx.media.testing import write_test_video

    root = tmp_path_factory.mktemp("ui-media")
    (root / "photo.png").write_bytes(png_bytes(5))
    (root / "second.png").write_bytes(png_bytes(6, (32, 32)))
    write_test_video(root / "clip.mp4", seconds=1, fps=8, size=(64, 48))
    (root / "notes.txt").write_text("not media")
    return root
