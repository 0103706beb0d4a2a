"""Where vllm-mlx keeps what it builds or downloads: one folder under the user cache.

Contract: :func:`cache_dir` is ``$XDG_CACHE_HOME/vllm-mlx`` (``~/.cache/vllm-mlx`` when
``XDG_CACHE_HOME`` is unset or empty), joined with ``parts``; read at each call, so a test
that changes the environment sees the change. Nothing is created here.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "vllm-mlx", *parts)
