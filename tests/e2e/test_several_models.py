"""``vllm-mlx serve MODEL MODEL ...`` as a user runs it: aliases, ``--models-dir``,
``--preload``, switching by name, and the mistakes that must fail fast (exit code 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import httpx
import openai

from tests.conftest import TINY_CACHE
from tests.e2e.conftest import free_port, start_server, stop_server


def _cards(url: str) -> dict[str, dict]:
    return {c["id"]: c for c in httpx.get(f"{url}/v1/models").json()["data"]}


def test_serve_several_models_preload_and_switch(tmp_path, tiny_model):
    folder = tmp_path / "models" / "team" / "small-llama"
    shutil.copytree(tiny_model("llama"), folder)
    server = start_server(["tiny:qwen3", "vl=tiny:qwen2_vl", "--models-dir",
                           str(tmp_path / "models"), "--preload", "vl", "--max-loaded-models",
                           "3", "--storage-path", str(tmp_path / "store")],
                          tmp_path / "server.log")
    try:
        cards = _cards(server.base_url)
        assert list(cards) == ["tiny:qwen3", "vl", "team/small-llama"]
        assert cards["vl"]["state"] == "loaded"  # preloaded
        assert cards["team/small-llama"]["state"] == "available"
        assert cards["team/small-llama"]["kind"] == "text"
        assert cards["team/small-llama"]["size_bytes"] > 0
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="team/small-llama", messages=[{"role": "user", "content": "hi"}],
            max_tokens=3)
        assert reply.model == "team/small-llama" and reply.usage.completion_tokens >= 1
        assert _cards(server.base_url)["team/small-llama"]["state"] == "loaded"
    finally:
        assert stop_server(server) == 0
    assert "loaded team/small-llama in" in server.output()


def _serve(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "vllm_mlx.cli", "serve", *args, "--tiny-cache-dir",
               str(TINY_CACHE), "--storage-path", str(tmp_path / "store")]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_mistakes_fail_fast_with_one_line(tmp_path):
    done = _serve(["tiny:qwen3", "tiny:qwen9"], tmp_path)
    assert done.returncode == 2
    assert "unknown tiny architecture 'qwen9'" in done.stderr.strip().splitlines()[-1]
    done = _serve(["tiny:qwen3", "--preload", "nope", "--port", str(free_port())], tmp_path)
    assert done.returncode == 2
    assert "The model 'nope' does not exist" in done.stderr.strip().splitlines()[-1]
