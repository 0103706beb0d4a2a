"""Slow group cases: the ``small`` preset (~0.5B, realistic shapes) split in two, and
pipeline parallelism on a tiny qwen2 (a text model mlx-lm can pipeline)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import stop_server
from vllm_mlx.engine import Engine, GenerationRequest, SamplingParams

from .conftest import start_group

pytestmark = pytest.mark.slow

PROMPTS = ["hello there", "The capital of France is", "1, 2, 3, 4,", "tell me a story"]


def _single_process(path: Path, max_tokens: int) -> list[str]:
    engine = Engine.start(str(path))
    try:
        return [engine.complete_sync(GenerationRequest(
            prompt=p, sampling=SamplingParams(max_tokens=max_tokens))).text for p in PROMPTS]
    finally:
        engine.shutdown()


def _group_answers(base_url: str, max_tokens: int) -> list[str | None]:
    answers: list[str | None] = [None] * len(PROMPTS)

    def ask(i: int) -> None:
        body = {"model": "default", "prompt": PROMPTS[i], "max_tokens": max_tokens,
                "temperature": 0}
        reply = httpx.post(f"{base_url}/v1/completions", json=body, timeout=600)
        answers[i] = reply.json()["choices"][0]["text"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(PROMPTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    return answers


def test_small_preset_tensor_parallel_equals_one_process(tmp_path):
    from vllm_mlx.tiny import ensure_tiny_model

    path = ensure_tiny_model("qwen3", "small")  # the benchmarks' copy, in the user cache
    expected = _single_process(path, 16)
    # Two ranks of a 0.5B fp32 model on a shared 2-core machine: steps may be slow.
    server = start_group(str(path), tmp_path, "--group-timeout", "300", timeout=600)
    try:
        assert _group_answers(server.base_url, 16) == expected
    finally:
        assert stop_server(server) == 0, server.output()


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, tiny_model) -> Path:
    """A 4-layer random qwen2 (mlx-lm pipelines qwen2) with the tiny qwen3 tokenizer."""
    import mlx.core as mx
    from mlx_lm.models import qwen2
    from mlx_lm.utils import save_model

    source = tiny_model("qwen3")
    out = tmp_path_factory.mktemp("qwen2-pipeline")
    config = json.loads((source / "config.json").read_text())
    config.update(model_type="qwen2", architectures=["Qwen2ForCausalLM"],
                  num_hidden_layers=4)
    config.pop("head_dim")
    mx.random.seed(3)
    save_model(out, qwen2.Model(qwen2.ModelArgs.from_dict(config)))  # writes the index
    (out / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(source / name, out / name)
    return out


def test_pipeline_parallel_equals_one_process(tiny_qwen2, tmp_path):
    expected = _single_process(tiny_qwen2, 16)
    server = start_group(str(tiny_qwen2), tmp_path, "--parallel", "pipeline")
    try:
        card = httpx.get(f"{server.base_url}/v1/models", timeout=10).json()["data"][0]
        assert card["parallel"] == "pipeline" and card["group_size"] == 2
        assert _group_answers(server.base_url, 16) == expected
    finally:
        assert stop_server(server) == 0, server.output()
    assert "rank 1: rank 0 stopped the group" in server.output()
