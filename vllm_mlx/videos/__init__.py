"""Diffusion video generation jobs behind the ``/v1/videos`` API (seed 002, video-jobs.md).

- :class:`~vllm_mlx.videos.service.VideoJobs`: ``VideoJobs.start(reference, storage_path,
  name=..., tiny_cache_dir=..., max_queued=...)`` loads a Wan model (``tiny:wan2_1[:PRESET]``,
  a Diffusers folder or a Hub repo) on its worker thread, recovers stored jobs, then creates,
  runs (one at a time), lists, serves and deletes jobs; ``shutdown()``.
- ``request`` parses and range-checks a request (a form or a JSON body, the same
  :class:`~.request.VideoRequest`); ``plan`` resolves it against the model into the exact
  settings a job runs with (what the worker hands the pipeline); ``reference`` loads the
  reference image;
  ``store`` keeps records in ``<storage>/videos.sqlite3`` and files in ``<storage>/videos/``;
  ``worker`` is the job thread; ``model`` resolves and detects video model references.

The HTTP routes and :func:`~.routes.install_videos` are in :mod:`.routes`; the OpenAPI
documentation models in :mod:`.protocol`.
"""

from __future__ import annotations

from .model import VideoModelError, is_video_reference, resolve_video_model

__all__ = ["VideoModelError", "is_video_reference", "resolve_video_model"]
