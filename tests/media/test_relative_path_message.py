"""A missing relative path names where it was looked for and what may be given instead:
a path under a media root (absolute paths elsewhere are refused, so "give an absolute
path" alone was wrong)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_mlx.media import MediaPolicy
from vllm_mlx.media.errors import MediaFetchError
from vllm_mlx.media.fetch import load_source_sync


def test_a_missing_relative_path_asks_for_a_path_under_a_media_root(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    policy = MediaPolicy(media_roots=(first.resolve(), second.resolve()))
    with pytest.raises(MediaFetchError) as info:
        load_source_sync("missing.mp4", kind="video", policy=policy)
    message = str(info.value)
    assert "give an absolute path," not in message
    assert "an absolute path under a media root" in message
    assert str(first.resolve()) in message and str(second.resolve()) in message
