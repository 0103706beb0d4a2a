"""The Wan2.1 diffusion transformer (Diffusers ``WanTransformer3DModel``) in MLX.

Contract: ``WanTransformer(cfg)(x, t, context, image_context=None)`` maps latents ``x`` of
shape ``(B, F, H, W, in_channels)`` (channel-last), timesteps ``t`` ``(B,)`` on the
0..1000 scale and projected-from text embeddings ``context`` ``(B, L, text_dim)`` to the
velocity ``(B, F, H, W, out_channels)``. Pipeline per Diffusers: patch embedding (a Conv3d
with kernel = stride = ``patch_size``, done as a linear map on patches), sinusoidal timestep
embedding -> time MLP -> 6-way modulation per block (shift/scale/gate for self-attention
and FFN), text projection (GELU-tanh MLP), blocks of self-attention with 3D RoPE (rotary
frequencies split across frame / height / width), cross-attention to the text (plus, for
Wan2.1 I2V, to CLIP image tokens through ``add_k_proj`` / ``add_v_proj``), GELU-tanh FFN,
then the final modulated norm, ``proj_out`` and unpatchify. ``after_block(index, tokens)``, when
given, is called after every block with its (lazy) output: the pipeline evaluates there, so a
step is many small units of work that can be cancelled, reported and interleaved.
Parameter names are Diffusers' (``blocks.N.attn1.to_q.weight``, ``blocks.N.ffn.net.0.proj``,
``condition_embedder.time_embedder.linear_1``, ``scale_shift_table`` ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._mlx import mx, nn
from .config import TransformerConfig
from .ops import attention


def timestep_embedding(t: mx.array, dim: int, max_period: float = 10000.0) -> mx.array:
    """Sinusoidal embedding ``[cos, sin]`` (Diffusers ``Timesteps``, flip_sin_to_cos=True)."""
    half = dim // 2
    freqs = mx.exp(-math.log(max_period) * mx.arange(half, dtype=mx.float32) / half)
    args = t.astype(mx.float32)[:, None] * freqs[None]
    return mx.concatenate([mx.cos(args), mx.sin(args)], axis=-1)


def rope_tables(head_dim: int, grid: tuple[int, int, int], theta: float = 10000.0):
    """cos/sin ``(L, head_dim/2)`` for the interleaved-pair rotation of a (f, h, w) grid."""
    h_dim = w_dim = 2 * (head_dim // 6)
    t_dim = head_dim - h_dim - w_dim
    split = [head_dim - 2 * (head_dim // 3), head_dim // 3, head_dim // 3]
    max_len = max(grid)
    angles = []
    for dim in (t_dim, h_dim, w_dim):
        inv = 1.0 / theta ** (np.arange(0, dim, 2)[: dim // 2] / dim)
        angles.append(np.repeat(np.outer(np.arange(max_len), inv), 2, axis=1))
    table = np.concatenate(angles, axis=1)  # (max_len, head_dim), pairs repeated
    parts = np.split(table, np.cumsum(split)[:-1], axis=1)
    f, h, w = grid
    full = np.concatenate(
        [
            np.broadcast_to(parts[0][:f, None, None], (f, h, w, split[0])),
            np.broadcast_to(parts[1][None, :h, None], (f, h, w, split[1])),
            np.broadcast_to(parts[2][None, None, :w], (f, h, w, split[2])),
        ],
        axis=-1,
    ).reshape(f * h * w, head_dim)
    cos = np.cos(full)[:, 0::2]
    sin = np.sin(full)[:, 1::2]
    return mx.array(cos.astype(np.float32)), mx.array(sin.astype(np.float32))


def apply_rope(x: mx.array, cos: mx.array, sin: mx.array) -> mx.array:
    """Rotate consecutive channel pairs of ``x`` ``(B, heads, L, D)``."""
    b, h, n, d = x.shape
    pairs = x.reshape(b, h, n, d // 2, 2)
    x1, x2 = pairs[..., 0], pairs[..., 1]
    out = mx.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return out.reshape(b, h, n, d)


class WanAttention(nn.Module):
    """Multi-head attention with RMS q/k norm across heads (and optional image K/V)."""

    def __init__(self, dim: int, heads: int, eps: float, qk_norm: bool, added_kv: int | None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = [nn.Linear(dim, dim)]
        if qk_norm:
            self.norm_q = nn.RMSNorm(dim, eps=eps)
            self.norm_k = nn.RMSNorm(dim, eps=eps)
        if added_kv is not None:
            self.add_k_proj = nn.Linear(added_kv, dim)
            self.add_v_proj = nn.Linear(added_kv, dim)
            self.norm_added_k = nn.RMSNorm(dim, eps=eps)

    def _heads(self, x: mx.array) -> mx.array:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, -1).transpose(0, 2, 1, 3)

    def _sdpa(self, q: mx.array, k: mx.array, v: mx.array) -> mx.array:
        out = attention(q, k, v)
        b, _, n, _ = out.shape
        return out.transpose(0, 2, 1, 3).reshape(b, n, -1)

    def __call__(
        self,
        x: mx.array,
        context: mx.array | None = None,
        rope: tuple[mx.array, mx.array] | None = None,
        image_context: mx.array | None = None,
    ) -> mx.array:
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        if "norm_q" in self:
            q, k = self.norm_q(q), self.norm_k(k)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = self._sdpa(q, k, v)
        if image_context is not None and "add_k_proj" in self:
            k_img = self._heads(self.norm_added_k(self.add_k_proj(image_context)))
            v_img = self._heads(self.add_v_proj(image_context))
            out = out + self._sdpa(q, k_img, v_img)
        return self.to_out[0](out)


class GeluProj(nn.Module):
    """``Linear`` then GELU (Diffusers ``GELU`` activation module: ``proj``)."""

    def __init__(self, dim_in: int, dim_out: int, approximate: bool) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)
        self._act = nn.gelu_approx if approximate else nn.gelu

    def __call__(self, x: mx.array) -> mx.array:
        return self._act(self.proj(x))


class FeedForward(nn.Module):
    """``net.0`` (GELU projection), ``net.1`` (dropout), ``net.2`` (Linear)."""

    def __init__(self, dim: int, inner: int, dim_out: int, approximate: bool = True) -> None:
        super().__init__()
        self.net = [GeluProj(dim, inner, approximate), nn.Identity(), nn.Linear(inner, dim_out)]

    def __call__(self, x: mx.array) -> mx.array:
        return self.net[2](self.net[0](x))


class WanBlock(nn.Module):
    """Modulated self-attention, cross-attention and FFN (Diffusers ``WanTransformerBlock``)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        dim = cfg.inner_dim
        qk = cfg.qk_norm is not None
        self.norm1 = nn.LayerNorm(dim, eps=cfg.eps, affine=False)
        self.attn1 = WanAttention(dim, cfg.num_attention_heads, cfg.eps, qk, None)
        self.attn2 = WanAttention(dim, cfg.num_attention_heads, cfg.eps, qk, cfg.added_kv_proj_dim)
        if cfg.cross_attn_norm:
            self.norm2 = nn.LayerNorm(dim, eps=cfg.eps, affine=True)
        self.ffn = FeedForward(dim, cfg.ffn_dim, dim)
        self.norm3 = nn.LayerNorm(dim, eps=cfg.eps, affine=False)
        self.scale_shift_table = mx.zeros((1, 6, dim))

    def __call__(self, x, context, temb6, rope, image_context=None) -> mx.array:
        mod = self.scale_shift_table + temb6  # (B, 6, dim)
        shift, scale, gate, c_shift, c_scale, c_gate = (mod[:, i : i + 1] for i in range(6))
        h = self.norm1(x) * (1 + scale) + shift
        x = x + self.attn1(h, rope=rope) * gate
        h = self.norm2(x) if "norm2" in self else x
        x = x + self.attn2(h, context, image_context=image_context)
        h = self.norm3(x) * (1 + c_scale) + c_shift
        return x + self.ffn(h) * c_gate


class TimestepMLP(nn.Module):
    """``linear_1`` -> SiLU -> ``linear_2`` (Diffusers ``TimestepEmbedding``)."""

    def __init__(self, dim_in: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(dim_in, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def __call__(self, x: mx.array) -> mx.array:
        return self.linear_2(nn.silu(self.linear_1(x)))


class TextProjection(nn.Module):
    """``linear_1`` -> GELU(tanh) -> ``linear_2`` (Diffusers ``PixArtAlphaTextProjection``)."""

    def __init__(self, dim_in: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(dim_in, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def __call__(self, x: mx.array) -> mx.array:
        return self.linear_2(nn.gelu_approx(self.linear_1(x)))


class ImageEmbedding(nn.Module):
    """LayerNorm -> GELU MLP -> LayerNorm on CLIP tokens (Diffusers ``WanImageEmbedding``)."""

    def __init__(self, dim_in: int, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim_in)
        self.ff = FeedForward(dim_in, dim_in, dim, approximate=False)
        self.norm2 = nn.LayerNorm(dim)

    def __call__(self, x: mx.array) -> mx.array:
        return self.norm2(self.ff(self.norm1(x)))


class ConditionEmbedder(nn.Module):
    """Timestep, text (and image) embeddings (Diffusers ``WanTimeTextImageEmbedding``)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        dim = cfg.inner_dim
        self.freq_dim = cfg.freq_dim
        self.time_embedder = TimestepMLP(cfg.freq_dim, dim)
        self.time_proj = nn.Linear(dim, dim * 6)
        self.text_embedder = TextProjection(cfg.text_dim, dim)
        if cfg.image_dim is not None:
            self.image_embedder = ImageEmbedding(cfg.image_dim, dim)

    def __call__(self, t: mx.array) -> tuple[mx.array, mx.array]:
        temb = self.time_embedder(timestep_embedding(t, self.freq_dim))
        return temb, self.time_proj(nn.silu(temb))


class WanTransformer(nn.Module):
    """Patchify -> blocks -> modulated head -> unpatchify."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        dim, (pt, ph, pw) = cfg.inner_dim, cfg.patch_size
        self.patch_embedding = nn.Module()
        self.patch_embedding.weight = mx.zeros((dim, pt, ph, pw, cfg.in_channels))
        self.patch_embedding.bias = mx.zeros((dim,))
        self.condition_embedder = ConditionEmbedder(cfg)
        self.blocks = [WanBlock(cfg) for _ in range(cfg.num_layers)]
        self.norm_out = nn.LayerNorm(dim, eps=cfg.eps, affine=False)
        self.proj_out = nn.Linear(dim, cfg.out_channels * pt * ph * pw)
        self.scale_shift_table = mx.zeros((1, 2, dim))

    def _patchify(self, x: mx.array) -> tuple[mx.array, tuple[int, int, int]]:
        b, f, h, w, c = x.shape
        pt, ph, pw = self.config.patch_size
        grid = (f // pt, h // ph, w // pw)
        x = x.reshape(b, grid[0], pt, grid[1], ph, grid[2], pw, c)
        x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, math.prod(grid), -1)
        weight = self.patch_embedding.weight.reshape(self.config.inner_dim, -1)
        return x @ weight.T + self.patch_embedding.bias, grid

    def _unpatchify(self, x: mx.array, grid: tuple[int, int, int]) -> mx.array:
        b = x.shape[0]
        pt, ph, pw = self.config.patch_size
        f, h, w = grid
        x = x.reshape(b, f, h, w, pt, ph, pw, -1).transpose(0, 1, 4, 2, 5, 3, 6, 7)
        return x.reshape(b, f * pt, h * ph, w * pw, -1)

    def embed_image(self, clip_tokens: mx.array) -> mx.array:
        """Project CLIP image tokens (I2V checkpoints only)."""
        return self.condition_embedder.image_embedder(clip_tokens)

    def __call__(
        self,
        x: mx.array,
        t: mx.array,
        context: mx.array,
        image_context: mx.array | None = None,
        after_block: Callable[[int, mx.array], None] | None = None,
    ) -> mx.array:
        cfg = self.config
        tokens, grid = self._patchify(x)
        rope = rope_tables(cfg.attention_head_dim, grid)
        temb, proj = self.condition_embedder(t)
        temb6 = proj.reshape(proj.shape[0], 6, -1)
        context = self.condition_embedder.text_embedder(context)
        if image_context is not None:
            image_context = self.embed_image(image_context)
        for index, block in enumerate(self.blocks):
            tokens = block(tokens, context, temb6, rope, image_context)
            if after_block is not None:
                after_block(index, tokens)
        mod = self.scale_shift_table + temb[:, None]
        shift, scale = mod[:, :1], mod[:, 1:2]
        tokens = self.proj_out(self.norm_out(tokens) * (1 + scale) + shift)
        return self._unpatchify(tokens, grid)
