"""Command-line hooks of the video feature, called from :mod:`vllm_mlx.server` (``serve``)
and :mod:`vllm_mlx.cli` (``tiny-model``).

- :func:`start_videos` loads the video model for ``serve``: ``--video-model REF``, or the
  served model itself when it is a video model (``tiny:wan2_1``, a Diffusers Wan folder, a
  Wan Hub repo); returns None when there is none. Any failure is a
  :class:`~vllm_mlx.videos.model.VideoModelError` with a readable message.
- :func:`tiny_video_model` is ``vllm-mlx tiny-model OUT --arch wan2_1 [--preset P]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from ..config import Settings
from .model import VideoModelError, is_video_reference

if TYPE_CHECKING:
    from .service import VideoJobs

logger = logging.getLogger("vllm_mlx")


def start_videos(settings: Settings) -> VideoJobs | None:
    from .service import VideoJobs  # here: loading it at import would load MLX too early

    reference, name = settings.video_model, settings.video_model
    if reference is None:
        if not is_video_reference(settings.model):
            return None
        reference, name = settings.model, settings.served_name
    try:
        jobs = VideoJobs.start(reference, settings.storage_path, name=name,
                               tiny_cache_dir=settings.tiny_cache_dir,
                               max_queued=settings.video_queue_size,
                               max_job_seconds=settings.video_max_job_seconds)
    except VideoModelError:
        raise
    except Exception as exc:  # a broken folder fails in many ways; say which model and why
        raise VideoModelError(f"could not load video model '{reference}': {exc}") from exc
    info = jobs.model
    logger.info("video model %s loaded from %s; jobs stored in %s", reference, info.path,
                jobs.store.folder)
    if info.random_weights:
        logger.warning("%s has RANDOM weights: a test fixture, its videos are noise", reference)
    logger.info("generating videos as '%s' on /v1/videos", info.name)
    return jobs


def tiny_video_model(args: argparse.Namespace) -> int:
    from ..diffusion import build_tiny_wan

    try:
        path = build_tiny_wan(args.out, seed=args.seed, preset=args.preset)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
