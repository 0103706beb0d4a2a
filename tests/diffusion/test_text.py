"""umT5 encoder and prompt encoding: buckets, shapes, masking, zeroed padding."""

from __future__ import annotations

import numpy as np
import pytest

from tests.diffusion.conftest import randomize
from vllm_mlx.diffusion._mlx import mx
from vllm_mlx.diffusion.config import UMT5Config
from vllm_mlx.diffusion.text import clean_prompt
from vllm_mlx.diffusion.umt5 import UMT5Encoder, relative_position_buckets
from vllm_mlx.diffusion.weights import torch_state

CFG = UMT5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4)


@pytest.fixture(scope="module")
def encoder() -> UMT5Encoder:
    return randomize(UMT5Encoder(CFG), seed=4)


def test_relative_position_buckets_known_values():
    b = relative_position_buckets(300, 32, 128)
    # key - query: 0..7 exact (keys after the query land in the upper half of 16 buckets)
    assert [int(b[0, k]) for k in range(8)] == [0, 17, 18, 19, 20, 21, 22, 23]
    assert [int(b[k, 0]) for k in range(8)] == [0, 1, 2, 3, 4, 5, 6, 7]
    # log-spaced beyond 8: 8 -> 8, 16 -> 10, 32 -> 12, 64 -> 14, >= 128 -> 15
    assert [int(b[d, 0]) for d in (8, 11, 16, 32, 64, 127, 128, 299)] == [
        8, 8, 10, 12, 14, 15, 15, 15
    ]  # fmt: skip
    assert int(b[0, 299]) == 31


def test_every_layer_has_its_own_position_bias(encoder):
    names = set(torch_state(encoder))
    for i in range(CFG.num_layers):
        assert f"encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight" in names
    assert "encoder.block.1.layer.1.DenseReluDense.wi_0.weight" in names
    assert "encoder.final_layer_norm.weight" in names and "shared.weight" in names


def test_encoder_shape_and_padding_mask(encoder):
    ids = mx.array([[5, 9, 12, 1, 0, 0]])
    mask = mx.array([[1, 1, 1, 1, 0, 0]])
    padded = np.array(encoder(ids, mask))
    assert padded.shape == (1, 6, 16)
    alone = np.array(encoder(ids[:, :4]))
    np.testing.assert_allclose(padded[:, :4], alone, atol=1e-4)
    unmasked = np.array(encoder(ids))
    assert np.abs(unmasked[:, :4] - alone).max() > 1e-5


def test_prompt_encoding_zero_pads(pipe):
    enc = pipe.text_encoder
    out = np.array(enc.encode(["a red car", "a very long prompt " * 40], max_length=24))
    d_model = enc.encoder.config.d_model
    assert out.shape == (2, 24, d_model)
    n = len(enc.token_ids("a red car", 24))
    assert enc.token_ids("a red car", 24)[-1] == 1  # </s> appended
    assert np.abs(out[0, :n]).max() > 0 and np.all(out[0, n:] == 0)
    assert np.abs(out[1]).min(axis=-1).shape == (24,) and np.all(np.abs(out[1]).max(-1) > 0)
    ids = enc.token_ids("a very long prompt " * 40, 24)
    assert len(ids) == 24 and ids[-1] == 1 and max(ids) < enc.encoder.config.vocab_size


def test_clean_prompt():
    assert clean_prompt("  a &amp;amp; b\n\t c ") == "a & b c"
