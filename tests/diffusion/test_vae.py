"""Causal Wan VAE: shapes, causality, chunked decode = one pass, checkpoint layout."""

from __future__ import annotations

import numpy as np
import pytest

from tests.diffusion.conftest import randomize
from vllm_mlx.diffusion._mlx import mx
from vllm_mlx.diffusion.config import VAEConfig
from vllm_mlx.diffusion.vae import AutoencoderKLWan
from vllm_mlx.diffusion.vae_layers import CausalCache, CausalConv3d
from vllm_mlx.diffusion.weights import torch_state


@pytest.fixture(scope="module")
def vae() -> AutoencoderKLWan:
    # attention in the encoder's 2nd stage too, so AttentionBlock is covered both ways
    return randomize(AutoencoderKLWan(VAEConfig(base_dim=8, num_res_blocks=1, attn_scales=(0.5,))))


def latents(frames: int, seed: int = 0) -> mx.array:
    return mx.random.normal((1, frames, 4, 6, 16), key=mx.random.key(seed))


def test_decode_shape_follows_frame_rule(vae):
    for t in (1, 2, 3):
        out = vae.decode(latents(t))
        assert out.shape == (1, 1 + 4 * (t - 1), 32, 48, 3)
        assert float(mx.abs(out).max()) <= 1.0


def test_encode_shape(vae):
    x = mx.random.uniform(-1, 1, (1, 9, 32, 48, 3), key=mx.random.key(1))
    z = vae.encode(x)
    assert z.shape == (1, 3, 4, 6, 16)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        vae.encode(x[:, :8])


def test_encode_chunking_is_exact(vae):
    x = mx.random.uniform(-1, 1, (1, 13, 16, 16, 3), key=mx.random.key(2))
    np.testing.assert_allclose(np.array(vae.encode(x, 4)), np.array(vae.encode(x, 12)), atol=1e-4)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_cached_decode_equals_full_decode(vae, chunk):
    z = latents(4)
    full = np.array(vae.decode(z, chunk_frames=None))
    parts = list(vae.decode_chunks(z, chunk_frames=chunk))
    assert [p.shape[1] for p in parts][0] == 1 + 4 * (min(chunk, 4) - 1)
    np.testing.assert_allclose(np.array(mx.concatenate(parts, axis=1)), full, atol=1e-4)


def test_decoder_is_causal_in_time(vae):
    z = latents(4)
    changed = mx.concatenate([z[:, :2], latents(2, seed=9)], axis=1)
    a, b = np.array(vae.decode(z)), np.array(vae.decode(changed))
    # latent frames 0..1 -> pixel frames 0..4: untouched; later ones change
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-5)
    assert np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-3


def test_causal_conv_streaming_matches_one_pass():
    conv = randomize(CausalConv3d(3, 4, 3, padding=1), seed=3)
    x = mx.random.normal((1, 7, 5, 5, 3), key=mx.random.key(4))
    full = np.array(conv(x))
    cache = CausalCache()
    parts = [conv(x[:, i : i + 2], cache) for i in range(0, 7, 2)]
    np.testing.assert_allclose(np.array(mx.concatenate(parts, axis=1)), full, atol=1e-5)
    # frame 0 sees only zeros in the past: same as convolving it alone
    np.testing.assert_allclose(np.array(conv(x[:, :1])), full[:, :1], atol=1e-5)


def test_normalize_roundtrip(vae):
    z = latents(2)
    np.testing.assert_allclose(np.array(vae.denormalize(vae.normalize(z))), np.array(z), atol=1e-5)


def test_checkpoint_names_and_layouts(vae):
    state = torch_state(vae)
    assert state["encoder.conv_in.weight"].shape == (8, 3, 3, 3, 3)
    assert state["decoder.up_blocks.0.upsamplers.0.time_conv.weight"].shape == (64, 32, 3, 1, 1)
    assert state["decoder.up_blocks.0.upsamplers.0.resample.1.weight"].shape == (16, 32, 3, 3)
    assert state["encoder.down_blocks.4.time_conv.weight"].shape == (16, 16, 3, 1, 1)
    assert state["encoder.down_blocks.3.norm.gamma"].shape == (16, 1, 1)  # attention block
    assert state["decoder.mid_block.attentions.0.norm.gamma"].shape == (32, 1, 1)
    assert state["decoder.mid_block.resnets.1.norm1.gamma"].shape == (32, 1, 1, 1)
    assert state["decoder.up_blocks.1.resnets.0.conv_shortcut.weight"].shape == (32, 16, 1, 1, 1)
    assert "quant_conv.weight" in state and "post_quant_conv.bias" in state
