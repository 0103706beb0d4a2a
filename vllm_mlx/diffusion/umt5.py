"""The umT5 text encoder (transformers ``UMT5EncoderModel``) in MLX.

Contract: ``UMT5Encoder(cfg)(ids, mask=None)`` maps token ids ``(B, L)`` (and an optional
0/1 attention mask ``(B, L)``, 0 = padding key) to the last hidden states ``(B, L, d_model)``.
As in umT5 (unlike T5), *every* layer owns a relative-position bias table (bidirectional
buckets, log-spaced beyond ``num_buckets / 4``); attention logits are not scaled; norms are
T5's RMS norm without mean subtraction; the FFN is gated-GELU (tanh approximation):
``wo(gelu(wi_0 x) * wi_1 x)``. Parameter names are transformers' (``shared.weight``,
``encoder.block.N.layer.0.SelfAttention.q.weight``, ``encoder.block.N.layer.1.DenseReluDense
.wi_0.weight``, ``encoder.final_layer_norm.weight``).
"""

from __future__ import annotations

import math

import numpy as np

from ._mlx import mx, nn
from .config import UMT5Config


def relative_position_buckets(
    length: int, num_buckets: int = 32, max_distance: int = 128
) -> np.ndarray:
    """Bidirectional T5 buckets ``(L, L)`` for ``key_pos - query_pos`` (float32 maths)."""
    pos = np.arange(length)
    rel = pos[None, :] - pos[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).astype(np.int64) * half
    rel = np.abs(rel)
    max_exact = half // 2
    scaled = np.log(np.maximum(rel, 1).astype(np.float32) / np.float32(max_exact))
    scaled = scaled / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = np.minimum(max_exact + scaled.astype(np.int64), half - 1)
    return buckets + np.where(rel < max_exact, rel, large)


class T5Norm(nn.Module):
    """``weight * x / sqrt(mean(x^2) + eps)``."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = mx.ones((dim,))
        self.eps = eps

    def __call__(self, x: mx.array) -> mx.array:
        return mx.fast.rms_norm(x, self.weight, self.eps)


class UMT5Attention(nn.Module):
    """Unscaled multi-head self-attention with its own relative position bias."""

    def __init__(self, cfg: UMT5Config) -> None:
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.cfg = cfg
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        self.relative_attention_bias = nn.Embedding(
            cfg.relative_attention_num_buckets, cfg.num_heads
        )

    def position_bias(self, length: int) -> mx.array:
        buckets = relative_position_buckets(
            length,
            self.cfg.relative_attention_num_buckets,
            self.cfg.relative_attention_max_distance,
        )
        bias = self.relative_attention_bias(mx.array(buckets))  # (L, L, H)
        return bias.transpose(2, 0, 1)[None]

    def __call__(self, x: mx.array, mask_bias: mx.array | None) -> mx.array:
        b, n, _ = x.shape
        heads = self.cfg.num_heads

        def split(t: mx.array) -> mx.array:
            return t.reshape(b, n, heads, -1).transpose(0, 2, 1, 3)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(0, 1, 3, 2) + self.position_bias(n)
        if mask_bias is not None:
            scores = scores + mask_bias
        out = mx.softmax(scores.astype(mx.float32), axis=-1) @ v
        return self.o(out.transpose(0, 2, 1, 3).reshape(b, n, -1))


class GatedGelu(nn.Module):
    """``wo(gelu_tanh(wi_0 x) * wi_1 x)`` (T5 ``DenseReluDense``, gated-gelu)."""

    def __init__(self, cfg: UMT5Config) -> None:
        super().__init__()
        self.wi_0 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wi_1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        return self.wo(nn.gelu_approx(self.wi_0(x)) * self.wi_1(x))


class SelfAttentionLayer(nn.Module):
    def __init__(self, cfg: UMT5Config) -> None:
        super().__init__()
        self.SelfAttention = UMT5Attention(cfg)
        self.layer_norm = T5Norm(cfg.d_model, cfg.layer_norm_epsilon)

    def __call__(self, x: mx.array, mask_bias: mx.array | None) -> mx.array:
        return x + self.SelfAttention(self.layer_norm(x), mask_bias)


class FeedForwardLayer(nn.Module):
    def __init__(self, cfg: UMT5Config) -> None:
        super().__init__()
        self.DenseReluDense = GatedGelu(cfg)
        self.layer_norm = T5Norm(cfg.d_model, cfg.layer_norm_epsilon)

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.DenseReluDense(self.layer_norm(x))


class UMT5Block(nn.Module):
    def __init__(self, cfg: UMT5Config) -> None:
        super().__init__()
        self.layer = [SelfAttentionLayer(cfg), FeedForwardLayer(cfg)]

    def __call__(self, x: mx.array, mask_bias: mx.array | None) -> mx.array:
        return self.layer[1](self.layer[0](x, mask_bias))


class UMT5Stack(nn.Module):
    def __init__(self, cfg: UMT5Config) -> None:
        super().__init__()
        self.block = [UMT5Block(cfg) for _ in range(cfg.num_layers)]
        self.final_layer_norm = T5Norm(cfg.d_model, cfg.layer_norm_epsilon)


class UMT5Encoder(nn.Module):
    """Token embedding, ``num_layers`` blocks and the final norm."""

    def __init__(self, cfg: UMT5Config) -> None:
        super().__init__()
        self.config = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = UMT5Stack(cfg)

    def __call__(self, ids: mx.array, mask: mx.array | None = None) -> mx.array:
        mask_bias = None
        if mask is not None:
            mask_bias = (1.0 - mask.astype(mx.float32))[:, None, None, :] * -1e9
        x = self.shared(ids)
        for block in self.encoder.block:
            x = block(x, mask_bias)
        return self.encoder.final_layer_norm(x)
