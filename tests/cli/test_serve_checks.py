"""``vllm-mlx serve`` fails fast, before any model loads, in one line with exit code 2: a
port in use, a Hub id that is not cached while offline or with the Hub unreachable, an
unknown ``tiny:`` architecture. ``serve VIDEO --video-model VIDEO`` serves it alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_CACHE
from vllm_mlx.config import Settings
from vllm_mlx.engine import ModelLoadError
from vllm_mlx.server import address_problem, check_references
from vllm_mlx.videos.model import VideoModelError

FAKE_REPO = "nobody-here/no-such-model-7f3a"


def _serve(args: list[str], tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess,
                                                                  float]:
    command = [sys.executable, "-m", "vllm_mlx.cli", "serve", *args,
               "--tiny-cache-dir", str(TINY_CACHE), "--storage-path", str(tmp_path / "store")]
    full_env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", **env}
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120)
    return done, time.monotonic() - started


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_port_in_use_is_refused_before_the_model_loads(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "already in use" in (address_problem("127.0.0.1", port) or "")
        # a model that does not exist: its error would show if it were looked at first
        done, _ = _serve(["tiny:qwen9", "--port", str(port)], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: the address is already in use (stop what "
        "uses it, or choose another --port)")
    assert "qwen9" not in done.stderr and "serving as" not in done.stderr
    assert address_problem("127.0.0.1", port) is None  # free again


def test_an_uncached_hub_id_offline_fails_fast_with_a_hint(tmp_path):
    done, seconds = _serve([FAKE_REPO, "--port", str(_closed_port())], tmp_path)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == [errors[-1]] and errors[-1].startswith(f"error: model '{FAKE_REPO}' is not "
                                                            "in the local Hugging Face cache")
    assert f"hf download {FAKE_REPO}" in errors[-1] and "HF_HUB_OFFLINE" in errors[-1]
    assert seconds < 30  # (interpreter and MLX start-up included)


def test_an_unreachable_hub_fails_within_seconds_without_retries(tmp_path):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    done, seconds = _serve([FAKE_REPO, "--port", str(_closed_port())], tmp_path,
                           HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "not in the local Hugging Face cache" in last and "cannot be reached" in last
    assert f"hf download {FAKE_REPO}" in last and "HF_HUB_OFFLINE=1" in last
    assert "Retrying" not in done.stderr and "WARNING" not in done.stderr
    assert seconds < 15, seconds  # it took 28 s of retries before


def test_the_hub_check_itself_takes_no_time_offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from vllm_mlx.engine.loader import check_hub_reference

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        check_hub_reference(FAKE_REPO)
    assert time.monotonic() - started < 2


def test_an_unknown_tiny_architecture_lists_video_ones_too():
    with pytest.raises(ModelLoadError) as info:
        check_references(Settings(model="tiny:qwen9"))
    assert "'qwen9'" in str(info.value) and "qwen2_vl" in str(info.value)
    assert "wan2_1" in str(info.value)


def test_one_video_model_named_twice_is_served_alone():
    same = Settings(model="tiny:wan2_1", video_model="tiny:wan2_1")
    assert check_references(same).video_model is None
    with pytest.raises(VideoModelError, match="is a video model: serve it alone"):
        check_references(Settings(model="tiny:wan2_1", video_model="tiny:wan2_1:mid"))
    chat = Settings(model="tiny:qwen3", video_model="tiny:wan2_1")
    assert check_references(chat) == chat
