"""Command-line wiring: storage path flags and variables, video flags, model detection."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_CACHE
from vllm_mlx.videos.model import VideoModelError, is_video_reference, resolve_video_model


def test_storage_path_flag_and_environment(monkeypatch, tmp_path) -> None:
    from vllm_mlx.cli import build_parser, settings_from_args

    def storage(*args: str):
        return settings_from_args(build_parser().parse_args(["serve", "m", *args])).storage_path

    monkeypatch.delenv("VLLM_MLX_STORAGE_PATH", raising=False)
    monkeypatch.setenv("VLLM_OMNI_STORAGE_PATH", str(tmp_path / "omni"))
    assert storage() == tmp_path / "omni"
    monkeypatch.setenv("VLLM_MLX_STORAGE_PATH", str(tmp_path / "mlx"))
    assert storage() == tmp_path / "mlx"
    assert storage("--storage-path", str(tmp_path / "flag")) == tmp_path / "flag"
    parsed = settings_from_args(build_parser().parse_args(
        ["serve", "m", "--video-model", "tiny:wan2_1", "--video-queue-size", "3",
         "--video-max-job-seconds", "90"]))
    assert (parsed.video_model, parsed.video_queue_size) == ("tiny:wan2_1", 3)
    assert parsed.video_max_job_seconds == 90.0


def test_video_model_detection(tmp_path, tiny_model) -> None:
    from vllm_mlx.diffusion import ensure_tiny_wan

    wan = ensure_tiny_wan(cache_dir=TINY_CACHE)
    assert is_video_reference("tiny:wan2_1") and is_video_reference("tiny:wan2_1:mid")
    assert is_video_reference(str(wan))
    assert not is_video_reference("tiny:qwen2_vl")
    assert not is_video_reference(str(tiny_model("qwen2_vl")))  # a chat model folder
    assert not is_video_reference(str(tmp_path))
    assert not is_video_reference("no-such-owner/no-such-repo")  # offline: not a video model
    assert resolve_video_model("tiny:wan2_1", TINY_CACHE) == (wan.resolve(), True)
    with pytest.raises(VideoModelError, match="not a video model"):
        resolve_video_model(str(tmp_path), None)
    with pytest.raises(VideoModelError, match="unknown preset"):
        resolve_video_model("tiny:wan2_1:huge", TINY_CACHE)
