"""Recognise a Diffusers-format video model folder without loading anything heavy.

Contract: ``is_video_model_folder(path)`` is true when ``model_index.json`` names a Wan video
pipeline class (``WanPipeline``, ``WanImageToVideoPipeline``, ...), or, without a readable
index, when the folder has both ``transformer/`` and ``vae/`` sub-folders. It never raises
(unreadable or missing paths are simply not video folders) and does not import MLX.
"""

from __future__ import annotations

import json
from pathlib import Path

VIDEO_PIPELINES = ("WanPipeline", "WanImageToVideoPipeline", "WanVideoToVideoPipeline")


def pipeline_class(path: str | Path) -> str | None:
    """``_class_name`` of ``model_index.json``, or None."""
    try:
        data = json.loads((Path(path) / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("_class_name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def is_video_model_folder(path: str | Path) -> bool:
    try:
        root = Path(path)
        if not root.is_dir():
            return False
        name = pipeline_class(root)
        if name is not None:
            return name in VIDEO_PIPELINES
        return (root / "transformer").is_dir() and (root / "vae").is_dir()
    except OSError:
        return False
