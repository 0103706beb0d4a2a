"""Image-to-video conditioning: reference image -> pixels, latents and masks.

Contract:
- ``image_to_pixels(image, width, height)``: any PIL image -> ``(1, 1, H, W, 3)`` float32 in
  [-1, 1], scaled to cover ``width x height`` (aspect ratio kept, bicubic) and centre-cropped.
- ``first_frame_latent(vae, pixels)``: the normalised VAE latent of the image alone,
  ``(1, 1, h, w, z)``. Used for text-to-video checkpoints (``in_channels == 16``): the
  pipeline holds latent frame 0 at this value during denoising, so decoded frame 0 is the
  VAE's reconstruction of the reference (the causal decoder makes frame 0 depend on latent
  frame 0 only) and later frames are generated to follow it. This is a simple, documented
  stand-in for a real I2V model, not Wan's trained I2V conditioning.
- ``wan_i2v_condition(vae, pixels, num_frames)``: Wan2.1 I2V (``in_channels == 36``): the
  ``(1, T, h, w, 4 + z)`` tensor concatenated to the noisy latents on channels: a 4-channel
  mask (1 for latent frame 0, 0 after) and the normalised latents of the clip
  ``[image, 0, 0, ...]`` (Diffusers ``WanImageToVideoPipeline.prepare_latents``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ._mlx import mx
from .vae import AutoencoderKLWan


def _cover_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


def image_to_pixels(image: Image.Image, width: int, height: int) -> mx.array:
    """``(1, 1, height, width, 3)`` in [-1, 1]."""
    if not isinstance(image, Image.Image):
        raise ValueError("image must be a PIL image")
    arr = np.asarray(_cover_crop(image, width, height), dtype=np.float32) / 127.5 - 1.0
    return mx.array(arr)[None, None]


def first_frame_latent(vae: AutoencoderKLWan, pixels: mx.array) -> mx.array:
    """Normalised latent ``(1, 1, h, w, z)`` of a single frame."""
    z = vae.normalize(vae.encode(pixels))
    mx.eval(z)
    return z


def wan_i2v_condition(vae: AutoencoderKLWan, pixels: mx.array, num_frames: int) -> mx.array:
    """Mask (4 channels) + latents of ``[image, zeros...]``: ``(1, T, h, w, 4 + z)``."""
    b, _, h, w, c = pixels.shape
    clip = mx.concatenate([pixels, mx.zeros((b, num_frames - 1, h, w, c))], axis=1)
    latents = vae.normalize(vae.encode(clip))
    t, lh, lw = latents.shape[1:4]
    mask = mx.zeros((b, t, lh, lw, 4))
    mask = mx.concatenate([mx.ones((b, 1, lh, lw, 4)), mask[:, 1:]], axis=1)
    cond = mx.concatenate([mask, latents], axis=-1)
    mx.eval(cond)
    return cond
