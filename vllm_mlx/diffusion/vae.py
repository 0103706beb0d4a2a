"""The Wan2.1 causal video VAE (Diffusers ``AutoencoderKLWan``), channel-last, in MLX.

Contract:
- Video ``(B, F, H, W, 3)`` in [-1, 1] with ``F = 1 + 4k`` <-> latents ``(B, 1 + k, H/8, W/8,
  z_dim)`` (temporal factor 4, spatial 8 for the Wan2.1 layout).
- ``decode_chunks(z, chunk_frames)`` decodes ``chunk_frames`` latent frames at a time (1 by
  default, like Diffusers), carrying a ``CausalCache`` of the last conv inputs, and yields
  each evaluated pixel chunk, so peak memory depends on the chunk, not on the clip length.
  Decoding is causal: pixel frames of latent frame ``i`` depend on latent frames ``<= i``
  only; any chunking gives the same frames as one pass (``chunk_frames=None``).
  ``after_stage(x)``, when given, is called inside each chunk before every up block of the
  decoder (:attr:`decode_stages` times; the pipeline evaluates and polls cancellation there).
- ``encode(x)`` returns the posterior mean (Diffusers ``argmax`` mode), encoding the first
  frame alone and then 4 frames at a time with the same cache.
- ``normalize`` / ``denormalize`` apply ``latents_mean`` / ``latents_std`` as Wan does.
Parameter names are Diffusers' (``encoder.down_blocks.N...``, ``decoder.up_blocks.N.resnets.M``,
``quant_conv``, ``post_quant_conv``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ._mlx import mx, nn
from .config import VAEConfig
from .vae_layers import (
    AttentionBlock,
    CausalCache,
    CausalConv3d,
    MidBlock,
    Resample,
    ResidualBlock,
    RMSNorm,
)

Stage = Callable[[mx.array], None]


def _cached_eval(out: mx.array, cache: CausalCache | None) -> None:
    mx.eval(out, *(cache.arrays() if cache is not None else []))


class Encoder3d(nn.Module):
    """conv_in, down blocks (resnets [+attention], resample), mid block, head."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        dims = [cfg.base_dim * u for u in (1, *cfg.dim_mult)]
        self.conv_in = CausalConv3d(cfg.in_channels, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        scale = 1.0
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim))
                if scale in cfg.attn_scales:
                    blocks.append(AttentionBlock(out_dim))
                in_dim = out_dim
            if i != len(cfg.dim_mult) - 1:
                mode = "downsample3d" if cfg.temperal_downsample[i] else "downsample2d"
                blocks.append(Resample(out_dim, mode))
                scale /= 2.0
        self.down_blocks = blocks
        self.mid_block = MidBlock(dims[-1])
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], cfg.z_dim * 2, 3, padding=1)

    def __call__(self, x: mx.array, cache: CausalCache | None = None) -> mx.array:
        x = self.conv_in(x, cache)
        for block in self.down_blocks:
            x = block(x, cache)
        x = self.mid_block(x, cache)
        return self.conv_out(nn.silu(self.norm_out(x)), cache)


class UpBlock(nn.Module):
    """``num_res_blocks + 1`` resnets and an optional upsampler (Diffusers ``WanUpBlock``)."""

    def __init__(self, in_dim: int, out_dim: int, num_res_blocks: int, mode: str | None) -> None:
        super().__init__()
        dims = [in_dim] + [out_dim] * num_res_blocks
        self.resnets = [ResidualBlock(d, out_dim) for d in dims]
        if mode is not None:
            self.upsamplers = [Resample(out_dim, mode)]

    def __call__(self, x: mx.array, cache: CausalCache | None = None) -> mx.array:
        for resnet in self.resnets:
            x = resnet(x, cache)
        if "upsamplers" in self:
            x = self.upsamplers[0](x, cache)
        return x


class Decoder3d(nn.Module):
    """conv_in, mid block, up blocks, head (RMS norm, SiLU, conv to RGB)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        base = cfg.decoder_base_dim or cfg.base_dim
        mult = cfg.dim_mult
        dims = [base * u for u in (mult[-1], *mult[::-1])]
        upsample_time = cfg.temperal_downsample[::-1]
        self.conv_in = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.mid_block = MidBlock(dims[0])
        blocks = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim //= 2
            mode = None
            if i != len(mult) - 1:
                mode = "upsample3d" if upsample_time[i] else "upsample2d"
            blocks.append(UpBlock(in_dim, out_dim, cfg.num_res_blocks, mode))
        self.up_blocks = blocks
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], cfg.out_channels, 3, padding=1)

    def __call__(self, z: mx.array, cache: CausalCache | None = None,
                 after_stage: Stage | None = None) -> mx.array:
        x = self.mid_block(self.conv_in(z, cache), cache)
        for block in self.up_blocks:
            if after_stage is not None:
                after_stage(x)
            x = block(x, cache)
        return self.conv_out(nn.silu(self.norm_out(x)), cache)


class AutoencoderKLWan(nn.Module):
    """Encoder, decoder and the 1x1x1 (post-)quant convs of the Wan2.1 VAE."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder3d(cfg)
        self.quant_conv = CausalConv3d(cfg.z_dim * 2, cfg.z_dim * 2, 1)
        self.post_quant_conv = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
        self.decoder = Decoder3d(cfg)

    # --- latent statistics -------------------------------------------------------------
    def normalize(self, z: mx.array) -> mx.array:
        mean = mx.array(self.config.latents_mean, dtype=z.dtype)
        return (z - mean) / mx.array(self.config.latents_std, dtype=z.dtype)

    def denormalize(self, z: mx.array) -> mx.array:
        std = mx.array(self.config.latents_std, dtype=z.dtype)
        return z * std + mx.array(self.config.latents_mean, dtype=z.dtype)

    @property
    def decode_stages(self) -> int:
        """``after_stage`` calls per decoded chunk."""
        return len(self.decoder.up_blocks)

    def latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.config.temporal_factor + 1

    # --- decode ------------------------------------------------------------------------
    def decode_chunks(
        self,
        z: mx.array,
        chunk_frames: int | None = 1,
        should_cancel: Callable[[], bool] | None = None,
        after_stage: Stage | None = None,
    ) -> Iterator[mx.array]:
        """Yield decoded pixel chunks ``(B, f, H, W, 3)`` in [-1, 1] (evaluated)."""
        z = self.post_quant_conv(z)
        step = z.shape[1] if chunk_frames is None else max(1, chunk_frames)
        cache = CausalCache() if step < z.shape[1] else None
        for start in range(0, z.shape[1], step):
            if should_cancel is not None and should_cancel():
                return
            out = self.decoder(z[:, start : start + step], cache, after_stage)
            if self.config.clip_output:
                out = mx.clip(out, -1.0, 1.0)
            _cached_eval(out, cache)
            yield out

    def decode(self, z: mx.array, chunk_frames: int | None = 1) -> mx.array:
        """The whole clip ``(B, F, H, W, 3)`` (concatenated chunks)."""
        return mx.concatenate(list(self.decode_chunks(z, chunk_frames)), axis=1)

    # --- encode ------------------------------------------------------------------------
    def encode(self, x: mx.array, chunk_frames: int = 4) -> mx.array:
        """Posterior mean ``(B, 1 + (F-1)//4, H/8, W/8, z_dim)`` of a clip in [-1, 1]."""
        factor = self.config.temporal_factor
        if (x.shape[1] - 1) % factor:
            raise ValueError(f"encode needs 1 + {factor}k frames, got {x.shape[1]}")
        step = max(factor, chunk_frames - chunk_frames % factor)
        cache = CausalCache()
        outs = [self.encoder(x[:, :1], cache)]
        _cached_eval(outs[-1], cache)
        for start in range(1, x.shape[1], step):
            outs.append(self.encoder(x[:, start : start + step], cache))
            _cached_eval(outs[-1], cache)
        moments = self.quant_conv(mx.concatenate(outs, axis=1))
        return moments[..., : self.config.z_dim]
