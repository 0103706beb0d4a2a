"""The tiny Llama 3.2 Vision (mllama) folder: builds, loads with mlx-vlm, is detected as a
vision model, carries open tanh gates, and rebuilds byte for byte."""

from __future__ import annotations

import json

import pytest

from tests.tiny.rebuild import rebuilt_twice
from vllm_mlx.engine.detect import ModelKind, detect_model_kind
from vllm_mlx.tiny import ARCHITECTURES

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
    folder = rebuilt_twice(tmp_path, ARCH)
    assert (folder / "preprocessor_config.json").is_file()
    assert (folder / "chat_template.json").is_file()
