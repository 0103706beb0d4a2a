"""Tiny Molmo, Phi-3-vision and DeepSeek-VL2: each builds, loads through ``mlx_vlm.load``
with every weight, is detected as vision-language, and rebuilds byte-identically.

Phi-3-vision carries mlx-vlm's full-size CLIP ViT-L/14 tower (~1.2 GB float32): its cases
are marked slow."""

from __future__ import annotations

import json

import pytest

from tests.tiny.rebuild import rebuilt_twice
from vllm_mlx.engine.detect import ModelKind, detect_model_kind
from vllm_mlx.tiny import ARCHITECTURES

ARCHS = ["molmo", "deepseek_vl_v2", pytest.param("phi3_v", marks=pytest.mark.slow)]


@pytest.mark.parametrize("arch", ARCHS)
def test_builds_loads_and_is_detected_as_vision(arch, tiny_model):
    import mlx_vlm
    from mlx.utils import tree_flatten

    path = tiny_model(arch)
    config = json.loads((path / "config.json").read_text())
    assert ARCHITECTURES[arch].is_vision
    assert detect_model_kind(config, path.name).kind is ModelKind.VISION
    assert detect_model_kind(config, "some/model").kind is ModelKind.VISION
    model, processor = mlx_vlm.load(str(path))  # strict: every parameter is in the file
    manifest = json.loads((path / "tiny_model.json").read_text())
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    assert n_params == manifest["num_parameters"]
    assert len(processor.tokenizer) == 1024


def test_molmo_image_tokens_are_the_extra_vocabulary(tiny_model):
    """The image tokens take the new-embedding rows, past the LM head's ``vocab_size``."""
    path = tiny_model("molmo")
    text = json.loads((path / "config.json").read_text())["text_config"]
    ids = json.loads((path / "tiny_model.json").read_text())["special_token_ids"]
    base = text["embedding_size"]
    assert text["vocab_size"] == base and base + text["additional_vocab_size"] == 1024
    for token in ("<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<|image|>"):
        assert base <= ids[token] < 1024


@pytest.mark.parametrize("arch", ARCHS)
def test_rebuild_is_byte_identical(arch, tmp_path):
    rebuilt_twice(tmp_path, arch)
