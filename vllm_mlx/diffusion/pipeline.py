"""Wan2.1 text-to-video / image-to-video generation on MLX (Diffusers-format folders).

Contract:
- ``WanPipeline.from_pretrained(path)`` opens a Diffusers ``WanPipeline`` (or
  ``WanImageToVideoPipeline``) folder: ``text_encoder/``, ``tokenizer/``, ``transformer/``,
  ``vae/``, ``scheduler/`` (+ ``image_encoder/``, ``image_processor/`` for Wan2.1 I2V) and
  the optional ``video_defaults.json``. Weights are read from safetensors as float32.
- ``generate(request, progress=None, should_cancel=None, stage=None) -> VideoGenResult``:
  validates
  (``ValueError``), encodes the prompt (and the negative prompt when ``guidance_scale > 1``:
  classifier-free guidance ``uncond + g * (cond - uncond)``, both in one batch), draws the
  initial noise from ``seed`` (same seed and settings -> identical frames), denoises with the
  chosen scheduler, then decodes with the causal VAE ``decode_chunk_frames`` (default 1)
  latent frames at a time, so decode memory does not grow with the clip length.
- Work is evaluated in small units: after every transformer block of every step and before
  every up block of every VAE chunk. At each unit ``should_cancel()`` is polled
  (``Cancelled`` is raised as soon as it returns true) and ``progress(fraction)`` is called
  with the share of the job's estimated work done (0..1, weights from :attr:`cost`: encode,
  denoise and decode in proportion to their estimated seconds; 1.0 once decoded). Small units
  keep cancellation prompt and let other MLX users of the process (chat) take turns.
  ``stage(name)`` is called as each phase begins: ``"encoding_prompt"`` (text and image
  conditioning), ``"denoising"``, ``"decoding"`` (the VAE), in that order.
- ``calibrate()`` measures this model on this machine (``cost.calibrate``) and keeps the
  :class:`~.cost.CostModel` as :attr:`cost`; ``estimate(r)`` is the
  :class:`~.cost.Estimate` of a resolved request. Calls are serialised per pipeline (a lock).
- Image-to-video: with a Wan2.1 I2V checkpoint (``in_channels == 36``; CLIP tokens when
  ``image_dim`` is set) the image conditions the model as in Diffusers; with a text-to-video
  checkpoint the image's latent is held as latent frame 0 (see ``image_cond``), noted in
  ``result.notes``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._mlx import mx
from .clip import CLIPImageEncoder
from .config import SchedulerConfig, TransformerConfig, UMT5Config, VAEConfig, read_json
from .cost import UNCALIBRATED, CostModel, Estimate, calibrate
from .image_cond import first_frame_latent, image_to_pixels, wan_i2v_condition
from .request import (
    Cancelled,
    ResolvedRequest,
    VideoDefaults,
    VideoGenRequest,
    VideoGenResult,
    resolve,
)
from .schedulers import make_scheduler
from .text import PromptEncoder
from .transformer import WanTransformer
from .umt5 import UMT5Encoder
from .vae import AutoencoderKLWan
from .weights import load_component

Progress = Callable[[float], None]
StageReport = Callable[[str], None]
CancelCheck = Callable[[], bool]
T2V_NOTE = (
    "image-to-video on a text-to-video checkpoint: the image was VAE-encoded as latent "
    "frame 0 and held fixed during denoising"
)


@dataclass
class _Conditioning:
    first_frame: mx.array | None = None  # (1, 1, h, w, z): T2V checkpoints
    concat: mx.array | None = None  # (1, T, h, w, 4 + z): Wan2.1 I2V
    clip: mx.array | None = None  # (1, tokens, image_dim): Wan2.1 I2V with image_dim


def _check(should_cancel: CancelCheck | None) -> None:
    if should_cancel is not None and should_cancel():
        raise Cancelled("generation cancelled")


class _Units:
    """Evaluates the work done so far at one unit's end, then reports it and polls cancel."""

    def __init__(self, estimate: Estimate, progress: Progress | None,
                 should_cancel: CancelCheck | None) -> None:
        self.total = max(estimate.total_s, 1e-9)
        self.done = 0.0
        self.progress, self.should_cancel = progress, should_cancel

    def __call__(self, seconds: float, *arrays: mx.array) -> None:
        if arrays:
            mx.eval(*arrays)
        self.done += seconds
        if self.progress is not None:
            self.progress(min(1.0, self.done / self.total))
        _check(self.should_cancel)


def _no_stage(_: str) -> None:
    pass


def _to_uint8(chunk: mx.array) -> np.ndarray:
    pixels = mx.round((mx.clip(chunk, -1.0, 1.0) + 1.0) * 127.5).astype(mx.uint8)
    return np.array(pixels)


class WanPipeline:
    """umT5 + Wan transformer + causal VAE + flow sampler."""

    def __init__(
        self,
        *,
        text_encoder: PromptEncoder,
        transformer: WanTransformer,
        vae: AutoencoderKLWan,
        scheduler_config: SchedulerConfig,
        defaults: VideoDefaults | None = None,
        image_encoder: CLIPImageEncoder | None = None,
        path: Path | None = None,
    ) -> None:
        self.text_encoder = text_encoder
        self.transformer = transformer
        self.vae = vae
        self.scheduler_config = scheduler_config
        self.defaults = defaults or VideoDefaults()
        self.image_encoder = image_encoder
        self.path = path
        self.decode_chunk_frames = 1  # latent frames per VAE chunk: memory vs. speed
        self.cost: CostModel = UNCALIBRATED
        self._lock = threading.Lock()

    # --- loading -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path) -> WanPipeline:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder")
        text_cfg = UMT5Config.from_dict(read_json(root / "text_encoder" / "config.json"))
        text_model = load_component(UMT5Encoder(text_cfg), root / "text_encoder")
        tr_cfg = TransformerConfig.from_dict(read_json(root / "transformer" / "config.json"))
        vae_cfg = VAEConfig.from_dict(read_json(root / "vae" / "config.json"))
        sched = root / "scheduler" / "scheduler_config.json"
        image_encoder = None
        if tr_cfg.image_dim is not None and (root / "image_encoder").is_dir():
            processor = root / "image_processor"
            image_encoder = CLIPImageEncoder.from_folders(
                root / "image_encoder", processor if processor.is_dir() else None
            )
        return cls(
            text_encoder=PromptEncoder.from_folder(root / "tokenizer", text_model),
            transformer=load_component(WanTransformer(tr_cfg), root / "transformer"),
            vae=load_component(AutoencoderKLWan(vae_cfg), root / "vae"),
            scheduler_config=SchedulerConfig.from_dict(read_json(sched) if sched.is_file() else {}),
            defaults=VideoDefaults.from_folder(root),
            image_encoder=image_encoder,
            path=root,
        )

    @property
    def is_i2v_model(self) -> bool:
        """A Wan2.1 I2V checkpoint (needs an image with every request)."""
        return self.transformer.config.in_channels > self.vae.config.z_dim

    def calibrate(self) -> CostModel:
        """Measure this model here (a second or so) and keep the result as :attr:`cost`."""
        with self._lock:
            self.cost = calibrate(self)
        return self.cost

    def estimate(self, r: ResolvedRequest) -> Estimate:
        return self.cost.estimate(self, r)

    # --- generation --------------------------------------------------------------------
    def resolve(self, request: VideoGenRequest) -> ResolvedRequest:
        """Validate and fill in defaults without generating (``ValueError`` when invalid)."""
        r = resolve(
            request,
            self.defaults,
            self.scheduler_config.default_kind,
            self.scheduler_config.flow_shift,
            self.vae.config.temporal_factor,
        )
        if self.is_i2v_model and r.image is None:
            raise ValueError("this image-to-video model needs an input image")
        return r

    def generate(
        self,
        request: VideoGenRequest | ResolvedRequest,
        progress: Progress | None = None,
        should_cancel: CancelCheck | None = None,
        stage: StageReport | None = None,
    ) -> VideoGenResult:
        """Generate ``request``; a :class:`VideoGenRequest` is resolved first, a
        ``ResolvedRequest`` (from :meth:`resolve`, or a stored job's plan) runs as it is."""
        r = request if isinstance(request, ResolvedRequest) else self.resolve(request)
        with self._lock:
            return self._generate(r, progress, should_cancel, stage or _no_stage)

    def _generate(
        self, r: ResolvedRequest, progress: Progress | None, should_cancel: CancelCheck | None,
        stage: StageReport,
    ) -> VideoGenResult:
        timings: dict[str, float] = {}
        notes = list(r.notes)
        start = time.perf_counter()
        estimate = self.estimate(r)
        units = _Units(estimate, progress, should_cancel)
        units(0.0)
        stage("encoding_prompt")
        context = self._encode_text(r)
        cond = self._condition(r, notes)
        units(estimate.encode_s)
        timings["encode_s"] = time.perf_counter() - start
        t0 = time.perf_counter()
        stage("denoising")
        latents = self._denoise(r, context, cond, units, estimate.step_s)
        timings["denoise_s"] = time.perf_counter() - t0
        timings["per_step_s"] = timings["denoise_s"] / r.num_inference_steps
        t0 = time.perf_counter()
        stage("decoding")
        frames = self._decode(latents, units, estimate.chunk_s)
        timings["decode_s"] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - start
        if not r.use_cfg:
            notes.append("guidance_scale <= 1: no unconditional pass")
        return VideoGenResult(
            frames=frames,
            fps=r.fps,
            seed=r.seed,
            width=r.width,
            height=r.height,
            num_frames=r.num_frames,
            num_inference_steps=r.num_inference_steps,
            guidance_scale=r.guidance_scale,
            flow_shift=r.flow_shift,
            scheduler=r.scheduler,
            timings=timings,
            notes=notes,
        )

    def _encode_text(self, r: ResolvedRequest) -> mx.array:
        prompts = [r.prompt, r.negative_prompt] if r.use_cfg else [r.prompt]
        return self.text_encoder.encode(prompts, r.max_sequence_length)

    def _condition(self, r: ResolvedRequest, notes: list[str]) -> _Conditioning:
        if r.image is None:
            return _Conditioning()
        pixels = image_to_pixels(r.image, r.width, r.height)
        if not self.is_i2v_model:
            notes.append(T2V_NOTE)
            return _Conditioning(first_frame=first_frame_latent(self.vae, pixels))
        cond = _Conditioning(concat=wan_i2v_condition(self.vae, pixels, r.num_frames))
        if self.transformer.config.image_dim is not None:
            if self.image_encoder is None:
                raise ValueError("this checkpoint needs image_encoder/ (CLIP) for images")
            cond.clip = self.image_encoder.encode(r.image)
        return cond

    def _noise(self, r: ResolvedRequest) -> mx.array:
        cfg = self.vae.config
        shape = (
            1,
            self.vae.latent_frames(r.num_frames),
            r.height // cfg.spatial_factor,
            r.width // cfg.spatial_factor,
            cfg.z_dim,
        )
        return mx.random.normal(shape, dtype=mx.float32, key=mx.random.key(r.seed))

    def _velocity(
        self, latents: mx.array, timestep: float, context: mx.array, cond: _Conditioning,
        g1: float, after_block: Callable[[int, mx.array], None] | None = None,
    ) -> mx.array:
        x = latents
        if cond.concat is not None:
            x = mx.concatenate([x, cond.concat], axis=-1)
        batch = context.shape[0]
        x = mx.concatenate([x] * batch) if batch > 1 else x
        clip = None
        if cond.clip is not None:
            clip = mx.concatenate([cond.clip] * batch) if batch > 1 else cond.clip
        t = mx.full((batch,), timestep, dtype=mx.float32)
        out = self.transformer(x, t, context, clip, after_block)
        return out[:1] + g1 * (out[:1] - out[1:]) if batch > 1 else out

    def _denoise(
        self,
        r: ResolvedRequest,
        context: mx.array,
        cond: _Conditioning,
        units: _Units,
        step_s: float,
    ) -> mx.array:
        scheduler = make_scheduler(
            r.scheduler, r.num_inference_steps, r.flow_shift, self.scheduler_config
        )
        latents = self._hold_first_frame(self._noise(r), cond)
        guidance = r.guidance_scale - 1.0  # cond + (g - 1) * (cond - uncond)
        block_s = step_s / self.transformer.config.num_layers

        def after_block(_: int, tokens: mx.array) -> None:
            units(block_s, tokens)

        for i, timestep in enumerate(scheduler.timesteps):
            velocity = self._velocity(latents, timestep, context, cond, guidance, after_block)
            latents = self._hold_first_frame(scheduler.step(velocity, i, latents), cond)
            units(0.0, latents)
        return latents

    @staticmethod
    def _hold_first_frame(latents: mx.array, cond: _Conditioning) -> mx.array:
        if cond.first_frame is None:
            return latents
        return mx.concatenate([cond.first_frame, latents[:, 1:]], axis=1)

    def _decode(self, latents: mx.array, units: _Units, chunk_s: float) -> np.ndarray:
        stage_s = chunk_s / (self.vae.decode_stages + 1)

        def after_stage(x: mx.array) -> None:
            units(stage_s, x)

        chunks = []
        for chunk in self.vae.decode_chunks(
            self.vae.denormalize(latents), self.decode_chunk_frames, after_stage=after_stage
        ):
            chunks.append(_to_uint8(chunk[0]))
            units(stage_s)
        units.done = units.total  # the estimate is behind or ahead: decoded is done
        units(0.0)
        return np.concatenate(chunks, axis=0)
