"""Diffusion video generation jobs behind the ``/v1/videos`` API (seed 002, video-jobs.md).

- :class:`~vllm_mlx.videos.service.VideoJobs`: ``VideoJobs.start(reference, storage_path,
  name=..., tiny_cache_dir=..., max_queued=...)`` loads a Wan model (``tiny:wan2_1[:PRESET]``,
  a Diffusers folder or a Hub repo) on its worker thread, recovers stored jobs, then creates,
  runs (one at a time), lists, serves and deletes jobs; ``shutdown()``.
- ``form`` parses and range-checks the multipart form; ``plan`` resolves it against the
  model into the exact settings a job runs with; ``reference`` loads the reference image;
  ``store`` keeps records in ``<storage>/videos.sqlite3`` and files in ``<storage>/videos/``;
  ``worker`` is the job thread; ``model`` resolves and detects video model references.

The HTTP routes are in :mod:`vllm_mlx.api.routes_videos`.
"""

from __future__ import annotations

from .model import VideoModelError, is_video_reference, resolve_video_model

__all__ = ["VideoModelError", "is_video_reference", "resolve_video_model"]
