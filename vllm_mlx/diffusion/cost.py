"""What a generation will cost on this machine: measured once at load, scaled per request.

Contract:
- :func:`calibrate(pipeline)` times the loaded model itself, small inputs growing until a
  run takes about :data:`TARGET_S` (so it stays brief on any model and machine): transformer
  forwards at two token counts fit ``seconds = overhead + flops / rate``; VAE decode chunks
  at two sizes fit ``seconds = overhead + pixels * per_pixel``; plus one prompt encode.
  It returns a :class:`CostModel`.
- :meth:`CostModel.estimate(r)` -> :class:`Estimate` for a resolved request: seconds to
  encode, per denoising step (FLOPs of every block at the request's token count, doubled
  batch under classifier-free guidance, attention quadratic in tokens), per VAE chunk and in
  all. The FLOP count is what makes a few small measurements scale to large requests.
- Without calibration :data:`UNCALIBRATED` still gives the right proportions between the
  stages (progress weights), not real seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ._mlx import mx
from .config import TransformerConfig

if TYPE_CHECKING:
    from .request import ResolvedRequest, VideoDefaults
    from .text import PromptEncoder
    from .transformer import WanTransformer
    from .vae import AutoencoderKLWan


class WanPipeline(Protocol):
    """What costing reads of a pipeline (:class:`.pipeline.WanPipeline`)."""

    transformer: WanTransformer
    vae: AutoencoderKLWan
    text_encoder: PromptEncoder
    defaults: VideoDefaults

TARGET_S = 0.2  # calibration inputs grow until one run takes about this long
MAX_LATENT_SIDE = 64  # ... or reach this many latent pixels a side


def block_flops(cfg: TransformerConfig, tokens: int, context: int) -> float:
    """Multiply-adds x 2 of one transformer block for one sample."""
    d, n, lc = cfg.inner_dim, tokens, context
    linear = 2 * n * d * d * 4 + 2 * n * d * d * 2 + 2 * lc * d * d * 2  # q k v o; q o; k v
    attention = 4 * n * n * d + 4 * n * lc * d  # scores and values, self and cross
    ffn = 4 * n * d * cfg.ffn_dim
    return float(linear + attention + ffn)


@dataclass(frozen=True)
class Estimate:
    encode_s: float
    step_s: float  # one denoising step: every block, the whole batch
    steps: int
    chunk_s: float  # one VAE decode chunk
    chunks: int

    @property
    def denoise_s(self) -> float:
        return self.step_s * self.steps

    @property
    def decode_s(self) -> float:
        return self.chunk_s * self.chunks

    @property
    def total_s(self) -> float:
        return self.encode_s + self.denoise_s + self.decode_s


@dataclass(frozen=True)
class CostModel:
    forward_overhead_s: float  # one transformer call, whatever its size
    flops_per_s: float
    chunk_overhead_s: float  # one VAE decode chunk, whatever its size
    chunk_s_per_pixel: float  # per output pixel of a chunk of ``temporal_factor`` frames
    encode_s: float

    def estimate(self, pipeline: WanPipeline, r: ResolvedRequest) -> Estimate:
        cfg, vae = pipeline.transformer.config, pipeline.vae.config
        _, ph, pw = cfg.patch_size
        latent_frames = pipeline.vae.latent_frames(r.num_frames)
        tokens = latent_frames * (r.height // vae.spatial_factor // ph) * (
            r.width // vae.spatial_factor // pw)
        batch = 2 if r.use_cfg else 1
        flops = batch * cfg.num_layers * block_flops(cfg, tokens, r.max_sequence_length)
        step_s = self.forward_overhead_s + flops / self.flops_per_s
        chunk_s = self.chunk_overhead_s + self.chunk_s_per_pixel * r.width * r.height
        encode_s = self.encode_s * batch
        return Estimate(encode_s, step_s, r.num_inference_steps, chunk_s, latent_frames)


UNCALIBRATED = CostModel(forward_overhead_s=0.0, flops_per_s=1e11, chunk_overhead_s=0.0,
                         chunk_s_per_pixel=2e-6, encode_s=0.0)


def _best_of(run: Callable[[], None], repeats: int = 2) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """``(overhead, seconds per unit)`` through the last two ``(units, seconds)`` points."""
    (u1, t1), (u2, t2) = points[-2], points[-1]
    slope = (t2 - t1) / (u2 - u1) if t2 > t1 and u2 > u1 else t2 / u2
    return max(0.0, t1 - slope * u1), max(slope, 1e-15)


def _grow(measure: Callable[[int], tuple[float, float]], side: int) -> list[tuple[float, float]]:
    """Measure at ``side``, doubling it until a run takes ``TARGET_S`` (two points at least)."""
    points = [measure(side)]
    while side * 2 <= MAX_LATENT_SIDE and (len(points) < 2 or points[-1][1] < TARGET_S):
        side *= 2
        points.append(measure(side))
    return points


def _forward_point(pipeline: WanPipeline, context: mx.array, side: int) -> tuple[float, float]:
    cfg = pipeline.transformer.config
    x = mx.random.normal((1, 1, side, side, cfg.in_channels), key=mx.random.key(0))
    t = mx.array([500.0])
    tokens = side * side // (cfg.patch_size[1] * cfg.patch_size[2])
    seconds = _best_of(lambda: mx.eval(pipeline.transformer(x, t, context)))
    return cfg.num_layers * block_flops(cfg, tokens, context.shape[1]), seconds


def _chunk_point(pipeline: WanPipeline, side: int) -> tuple[float, float]:
    vae = pipeline.vae
    z = mx.random.normal((1, 2, side, side, vae.config.z_dim), key=mx.random.key(0))

    def second_chunk() -> None:
        chunks = vae.decode_chunks(z, chunk_frames=1)
        next(chunks)
        t0 = time.perf_counter()
        next(chunks)
        times.append(time.perf_counter() - t0)

    times: list[float] = []
    second_chunk()
    second_chunk()
    pixels = (side * vae.config.spatial_factor) ** 2
    return float(pixels), min(times)


def calibrate(pipeline: WanPipeline) -> CostModel:
    """Time the loaded model on small inputs (a second or so) and fit a :class:`CostModel`."""
    length = pipeline.defaults.max_sequence_length
    t0 = time.perf_counter()
    context = pipeline.text_encoder.encode(["calibration"], length)
    encode_s = time.perf_counter() - t0
    _forward_point(pipeline, context, 4)  # warm-up
    forward = _fit(_grow(lambda side: _forward_point(pipeline, context, side), 4))
    chunk = _fit(_grow(lambda side: _chunk_point(pipeline, side), 4))
    return CostModel(forward_overhead_s=forward[0], flops_per_s=1.0 / forward[1],
                     chunk_overhead_s=chunk[0], chunk_s_per_pixel=chunk[1], encode_s=encode_s)
