"""The tiny Llama 3.2 Vision (mllama) folder: builds, loads with mlx-vlm, is detected as a
vision model, carries open tanh gates, and rebuilds byte for byte."""

from __future__ import annotations

import json

import pytest

from vllm_mlx.engine.detect import ModelKind, detect_model_kind
from vllm_mlx.tiny import ARCHITECTURES, build_tiny_model

ARCH = "mllama"


@pytest.fixture(scope="module")
def folder(tiny_model):
    return tiny_model(ARCH)


def test_registered_as_a_vision_arch():
    arch = ARCHITECTURES[ARCH]
    assert arch.is_vision and arch.loader == "mlx_vlm" and not arch.supports_video


def test_config_is_the_spec_shape(folder):
    config = json.loads((folder / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    assert config["model_type"] == "mllama"
    assert text["model_type"] == "mllama_text_model"
    assert text["num_hidden_layers"] == 3 and text["cross_attention_layers"] == [1]
    assert vision["model_type"] == "mllama_vision_model"
    assert (vision["image_size"], vision["patch_size"]) == (32, 8)
    assert vision["vision_output_dim"] == 96 and "max_aspect_ratio_id" not in vision
    assert detect_model_kind(config, folder.name).kind is ModelKind.VISION


def test_loads_and_its_gates_are_open(folder):
    import mlx.core as mx
    import mlx_vlm
    from mlx.utils import tree_flatten

    model, processor = mlx_vlm.load(str(folder))
    assert type(processor).__name__ == "MllamaProcessor"
    gates = {k: v for k, v in tree_flatten(model.parameters())
             if k.endswith(("_gate", ".gate", "gate_attn", "gate_ffn"))}
    assert len(gates) == 7
    assert all(bool(mx.all(v == 1)) for v in gates.values())


def test_rebuild_is_byte_identical(tmp_path):
    first = build_tiny_model(tmp_path / "a", ARCH)
    second = build_tiny_model(tmp_path / "b", ARCH)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert "preprocessor_config.json" in names and "chat_template.json" in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
