"""Shared generated media for the media tests (encoded once per session)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

from vllm_mlx.media.testing import write_test_video


@cache
def _clip(seconds: float, fps: float, vfr: bool, codec: str) -> bytes:
    data = write_test_video(None, seconds=seconds, fps=fps, vfr=vfr, codec=codec)  # type: ignore[arg-type]
    assert isinstance(data, bytes)
    return data


@pytest.fixture(scope="session")
def clip() -> Callable[..., bytes]:
    """``clip(seconds, fps, vfr=False, codec="h264")`` -> mp4 bytes (cached)."""

    def make(seconds: float, fps: float, *, vfr: bool = False, codec: str = "h264") -> bytes:
        return _clip(seconds, fps, vfr, codec)

    return make
