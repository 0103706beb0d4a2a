"""Wan transformer: shapes, 3D RoPE, patchify layout, I2V image tokens, checkpoint names."""

from __future__ import annotations

import numpy as np
import pytest

from tests.diffusion.conftest import randomize
from vllm_mlx.diffusion._mlx import mx
from vllm_mlx.diffusion.config import TransformerConfig
from vllm_mlx.diffusion.ops import attention
from vllm_mlx.diffusion.transformer import (
    WanTransformer,
    apply_rope,
    rope_tables,
    timestep_embedding,
)
from vllm_mlx.diffusion.weights import torch_state

CFG = TransformerConfig(
    num_attention_heads=2,
    attention_head_dim=24,
    text_dim=32,
    freq_dim=32,
    ffn_dim=64,
    num_layers=2,
)


@pytest.fixture(scope="module")
def model() -> WanTransformer:
    return randomize(WanTransformer(CFG), seed=1)


def inputs(batch: int = 1, frames: int = 3, seed: int = 0):
    key = mx.random.key(seed)
    x = mx.random.normal((batch, frames, 4, 6, 16), key=key)
    ctx = mx.random.normal((batch, 7, 32), key=mx.random.key(seed + 1))
    return x, mx.array([500.0] * batch), ctx


def test_output_shape_matches_latents(model):
    x, t, ctx = inputs(batch=2)
    out = model(x, t, ctx)
    assert out.shape == x.shape
    assert np.isfinite(np.array(out)).all()


def test_depends_on_timestep_and_text(model):
    x, t, ctx = inputs()
    base = np.array(model(x, t, ctx))
    assert np.abs(base - np.array(model(x, t * 0.5, ctx))).max() > 1e-4
    assert np.abs(base - np.array(model(x, t, ctx * 2))).max() > 1e-4


def test_batch_rows_are_independent(model):
    x, t, ctx = inputs(batch=2)
    both = np.array(model(x, t, ctx))
    one = np.array(model(x[1:], t[1:], ctx[1:]))
    np.testing.assert_allclose(both[1:], one, atol=1e-4)


def test_timestep_embedding_is_cos_then_sin():
    emb = np.array(timestep_embedding(mx.array([0.0, 3.0]), 8))
    np.testing.assert_allclose(emb[0], [1, 1, 1, 1, 0, 0, 0, 0], atol=1e-7)
    freqs = np.exp(-np.log(10000.0) * np.arange(4) / 4)
    np.testing.assert_allclose(emb[1, :4], np.cos(3 * freqs), atol=1e-5)
    np.testing.assert_allclose(emb[1, 4:], np.sin(3 * freqs), atol=1e-5)


def test_rope_splits_frequencies_over_frame_height_width():
    head = 24  # t: 8 channels (4 pairs), h: 8, w: 8
    cos, sin = rope_tables(head, (2, 3, 4))
    assert cos.shape == (24, 12)
    cos, sin = np.array(cos), np.array(sin)
    idx = lambda f, h, w: (f * 3 + h) * 4 + w  # noqa: E731
    # moving along width changes only the last 4 pairs, along frames only the first 4
    assert np.allclose(cos[idx(0, 0, 0), :8], cos[idx(0, 0, 3), :8])
    assert not np.allclose(cos[idx(0, 0, 0), 8:], cos[idx(0, 0, 3), 8:])
    assert np.allclose(cos[idx(0, 0, 0), 4:], cos[idx(1, 0, 0), 4:])
    assert not np.allclose(cos[idx(0, 0, 0), :4], cos[idx(1, 0, 0), :4])
    np.testing.assert_allclose(cos[idx(0, 0, 0)], 1.0)
    np.testing.assert_allclose(sin[idx(0, 0, 0)], 0.0, atol=1e-7)


def test_rope_rotates_interleaved_pairs_and_keeps_norm():
    cos, sin = rope_tables(24, (1, 1, 5))
    x = mx.random.normal((1, 2, 5, 24), key=mx.random.key(3))
    y = apply_rope(x, cos, sin)
    np.testing.assert_allclose(
        np.linalg.norm(np.array(y), axis=-1), np.linalg.norm(np.array(x), axis=-1), rtol=1e-5
    )
    a, b = np.array(x)[0, 0, 2, 20:22], np.array(y)[0, 0, 2, 20:22]
    c, s = np.array(cos)[2, 10], np.array(sin)[2, 10]
    np.testing.assert_allclose(b, [a[0] * c - a[1] * s, a[0] * s + a[1] * c], rtol=1e-5)


def test_patchify_unpatchify_roundtrip(model):
    x, _, _ = inputs()
    tokens, grid = model._patchify(x)
    assert grid == (3, 2, 3) and tokens.shape == (1, 18, CFG.inner_dim)
    b, f, h, w, c = x.shape
    patches = x.reshape(b, f, 2, 2, 3, 2, c).transpose(0, 1, 2, 4, 3, 5, 6).reshape(b, 18, -1)
    np.testing.assert_allclose(np.array(model._unpatchify(patches, grid)), np.array(x), rtol=1e-6)


def test_image_context_needs_i2v_layers():
    cfg = TransformerConfig(**{**CFG.__dict__, "in_channels": 36, "image_dim": 12})
    cfg = TransformerConfig(**{**cfg.__dict__, "added_kv_proj_dim": cfg.inner_dim})
    m = randomize(WanTransformer(cfg), seed=2)
    x = mx.random.normal((1, 2, 4, 6, 36), key=mx.random.key(5))
    t, ctx = mx.array([10.0]), mx.random.normal((1, 7, 32), key=mx.random.key(6))
    img = mx.random.normal((1, 5, 12), key=mx.random.key(7))
    with_img, without = np.array(m(x, t, ctx, img)), np.array(m(x, t, ctx))
    assert with_img.shape == (1, 2, 4, 6, 16)
    assert np.abs(with_img - without).max() > 1e-4
    names = set(torch_state(m))
    assert "blocks.0.attn2.add_k_proj.weight" in names
    assert "blocks.0.attn2.norm_added_k.weight" in names
    assert "condition_embedder.image_embedder.ff.net.0.proj.weight" in names


def test_checkpoint_names(model):
    state = torch_state(model)
    assert state["patch_embedding.weight"].shape == (48, 16, 1, 2, 2)
    for name in (
        "blocks.1.attn1.norm_q.weight",
        "blocks.1.attn1.to_out.0.weight",
        "blocks.0.norm2.weight",
        "blocks.0.ffn.net.0.proj.weight",
        "blocks.0.ffn.net.2.bias",
        "blocks.0.scale_shift_table",
        "condition_embedder.time_embedder.linear_2.weight",
        "condition_embedder.time_proj.weight",
        "condition_embedder.text_embedder.linear_1.weight",
        "proj_out.weight",
        "scale_shift_table",
    ):
        assert name in state, name
    assert state["condition_embedder.time_proj.weight"].shape == (6 * 48, 48)
    assert state["scale_shift_table"].shape == (1, 2, 48)


def test_blocked_attention_equals_full():
    q, k, v = (mx.random.normal((2, 3, 50, 8), key=mx.random.key(i)) for i in range(3))
    full = np.array(attention(q, k, v))
    blocked = np.array(attention(q, k, v, max_scores=2 * 3 * 50 * 7))  # blocks of 7 queries
    np.testing.assert_allclose(blocked, full, atol=1e-5)
