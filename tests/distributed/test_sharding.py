"""Which models can be split, and the reasons given when one cannot (no group needed)."""

from __future__ import annotations

import json
import shutil

import pytest

from vllm_mlx.distributed.sharding import check_tensor_split, load_sharded
from vllm_mlx.engine import ModelKind, ModelLoadError
from vllm_mlx.engine.loader import LoadOptions, read_config


class TwoRanks:
    """Stands in for an mx.distributed group; the refusals happen before any collective."""

    def size(self) -> int:
        return 2

    def rank(self) -> int:
        return 0


def _options(parallel: str) -> LoadOptions:
    return LoadOptions(group=TwoRanks(), parallel=parallel)


def test_tensor_split_needs_even_heads_and_mlp():
    config = {"num_attention_heads": 16, "num_key_value_heads": 8, "intermediate_size": 3072}
    check_tensor_split(config, 2)
    check_tensor_split({"text_config": config}, 4)
    with pytest.raises(ModelLoadError, match=r"KV heads \(8\) divisible by 3") as caught:
        check_tensor_split(config, 3)
    assert "attention heads (16)" in str(caught.value)


def test_tensor_split_of_the_tiny_text_model_over_three_ranks_is_refused(tiny_model):
    path = tiny_model("qwen3")  # 4 heads, 2 KV heads
    with pytest.raises(ModelLoadError, match="divisible by 3"):
        check_tensor_split(read_config(path), 3)


def test_pipeline_needs_a_weight_index(tiny_model):
    path = tiny_model("qwen3")
    with pytest.raises(ModelLoadError, match="model.safetensors.index.json"):
        load_sharded(path, read_config(path), ModelKind.TEXT, _options("pipeline"))


def test_pipeline_of_a_model_without_pipeline_support_says_so(tiny_model, tmp_path):
    source = tiny_model("qwen3")  # mlx-lm's qwen3 has shard() but no pipeline()
    path = tmp_path / "qwen3"
    shutil.copytree(source, path)
    index = {"metadata": {}, "weight_map": {"model.norm.weight": "model.safetensors"}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="mlx-lm cannot split qwen3 this way "
                                             r"\(pipeline parallel\).*pipelin"):
        load_sharded(path, read_config(path), ModelKind.TEXT, _options("pipeline"))


def test_vision_models_whose_language_model_cannot_shard_are_refused(tiny_model):
    path = tiny_model("qwen2_vl")
    with pytest.raises(ModelLoadError, match="cannot split the language model of qwen2_vl"):
        load_sharded(path, read_config(path), ModelKind.VISION, _options("tensor"))
    with pytest.raises(ModelLoadError, match="pipeline parallelism is not available"):
        load_sharded(path, read_config(path), ModelKind.VISION, _options("pipeline"))


def test_an_unknown_mode_is_refused(tiny_model):
    path = tiny_model("qwen3")
    with pytest.raises(ModelLoadError, match="unknown parallel mode 'expert'"):
        load_sharded(path, read_config(path), ModelKind.TEXT, _options("expert"))
