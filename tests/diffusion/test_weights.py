"""Checkpoint loading: layout conversion, sharding, bf16, known extras, strictness."""

from __future__ import annotations

import numpy as np
import pytest
from mlx.utils import tree_flatten

from vllm_mlx.diffusion._mlx import mx
from vllm_mlx.diffusion.config import TransformerConfig, UMT5Config
from vllm_mlx.diffusion.tiny import random_state
from vllm_mlx.diffusion.transformer import WanTransformer
from vllm_mlx.diffusion.umt5 import UMT5Encoder
from vllm_mlx.diffusion.weights import load_component, to_mlx, to_torch

CFG = TransformerConfig(
    num_attention_heads=2, attention_head_dim=12, text_dim=8, freq_dim=8, ffn_dim=16, num_layers=1
)


def test_layout_conversions_are_inverse():
    cases = {
        "decoder.conv_in.weight": (8, 16, 3, 3, 3),
        "decoder.up_blocks.0.upsamplers.0.resample.1.weight": (4, 8, 3, 3),
        "decoder.norm_out.gamma": (8, 1, 1, 1),
        "decoder.mid_block.attentions.0.norm.gamma": (8, 1, 1),
        "blocks.0.attn1.to_q.weight": (24, 24),
    }
    for name, shape in cases.items():
        a = mx.random.normal(shape)
        b = to_mlx(name, a)
        assert np.array_equal(np.array(to_torch(name, b)), np.array(a)), name
    assert to_mlx("decoder.conv_in.weight", mx.zeros((8, 16, 3, 3, 3))).shape == (8, 3, 3, 3, 16)
    assert to_mlx("decoder.norm_out.gamma", mx.zeros((8, 1, 1, 1))).shape == (8,)


def save_shards(folder, state: dict[str, np.ndarray], dtype) -> None:
    names = sorted(state)
    half = len(names) // 2
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate((names[:half], names[half:])):
        shard = {n: mx.array(state[n]).astype(dtype) for n in part}
        mx.save_safetensors(str(folder / f"model-0000{i + 1}-of-00002.safetensors"), shard)


def test_sharded_bf16_checkpoint_with_known_extras(tmp_path):
    state = random_state(WanTransformer(CFG), seed=5)
    state["blocks.0.attn2.norm_added_q.weight"] = np.ones(24, np.float32)  # real I2V extra
    save_shards(tmp_path / "transformer", state, mx.bfloat16)
    model = load_component(WanTransformer(CFG), tmp_path / "transformer")
    params = dict(tree_flatten(model.parameters()))
    assert params["patch_embedding.weight"].dtype == mx.float32
    bf16 = mx.array(state["patch_embedding.weight"]).astype(mx.bfloat16).astype(mx.float32)
    got = np.array(params["patch_embedding.weight"].transpose(0, 4, 1, 2, 3))
    np.testing.assert_array_equal(got, np.array(bf16))


def test_umt5_tied_embedding_name(tmp_path):
    cfg = UMT5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)
    state = random_state(UMT5Encoder(cfg), seed=6)
    state["encoder.embed_tokens.weight"] = state.pop("shared.weight")
    save_shards(tmp_path / "text_encoder", state, mx.float32)
    model = load_component(UMT5Encoder(cfg), tmp_path / "text_encoder")
    np.testing.assert_array_equal(
        np.array(model.shared.weight), state["encoder.embed_tokens.weight"]
    )


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    state = random_state(WanTransformer(CFG), seed=7)
    del state["proj_out.weight"]
    state["blocks.0.unknown.weight"] = np.zeros(3, np.float32)
    save_shards(tmp_path / "t", state, mx.float32)
    with pytest.raises(ValueError, match="proj_out.weight.*blocks.0.unknown.weight"):
        load_component(WanTransformer(CFG), tmp_path / "t")
    with pytest.raises(FileNotFoundError):
        load_component(WanTransformer(CFG), tmp_path / "empty")
