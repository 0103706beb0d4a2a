"""Video model references: ``tiny:wan2_1[:PRESET]``, a local Diffusers folder, or a Hub repo.

Contract:
- :func:`is_video_reference` tells whether ``vllm-mlx serve REF`` names a video model:
  ``tiny:wan2_1...``, a local folder that :func:`~vllm_mlx.diffusion.is_video_model_folder`
  accepts, or a Hub repo whose ``model_index.json`` (cached, or fetched alone) names a Wan
  pipeline. It never raises.
- :func:`resolve_video_model` returns ``(folder, random_weights)``; ``tiny:wan2_1`` builds
  the random-weight preset (``tiny``, or ``:mid`` / ``:tiny-i2v``) once into the tiny-model
  cache. Anything else that is not a video model raises :class:`VideoModelError`.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_ARCHS = ("wan2_1",)
TINY_PREFIX = "tiny:"
_INDEX = "model_index.json"
_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt"]


class VideoModelError(Exception):
    """The reference is not a loadable video model (a message for the command line)."""


def _tiny_parts(reference: str) -> tuple[str, str] | None:
    if not reference.startswith(TINY_PREFIX):
        return None
    arch, _, preset = reference[len(TINY_PREFIX):].partition(":")
    return (arch, preset or "tiny") if arch in TINY_ARCHS else None


def _looks_like_repo(reference: str) -> bool:
    return reference.count("/") == 1 and not reference.startswith((".", "/", "~"))


def _hub_index(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, _INDEX))
    except Exception:  # offline, missing, gated: not a video repo as far as we can tell
        return None


def is_video_reference(reference: str) -> bool:
    from ..diffusion.folder import VIDEO_PIPELINES, is_video_model_folder

    if _tiny_parts(reference) is not None:
        return True
    local = Path(reference).expanduser()
    if local.exists():
        return is_video_model_folder(local)
    if not _looks_like_repo(reference):
        return False
    index = _hub_index(reference)
    try:
        name = json.loads(index.read_text(encoding="utf-8")).get("_class_name") if index else None
    except (OSError, ValueError, AttributeError):
        return False
    return name in VIDEO_PIPELINES


def resolve_video_model(reference: str, tiny_cache_dir: Path | None) -> tuple[Path, bool]:
    from ..diffusion import ensure_tiny_wan, is_video_model_folder

    tiny = _tiny_parts(reference)
    if tiny is not None:
        try:
            return ensure_tiny_wan(cache_dir=tiny_cache_dir, preset=tiny[1]).resolve(), True
        except ValueError as exc:
            raise VideoModelError(str(exc)) from exc
    local = Path(reference).expanduser()
    if not local.exists() and _looks_like_repo(reference):
        local = _download(reference)
    if not is_video_model_folder(local):
        raise VideoModelError(
            f"'{reference}' is not a video model: expected a Diffusers Wan folder "
            f"(model_index.json naming WanPipeline), a Hub repo of one, or tiny:wan2_1"
        )
    return local.resolve(), (local / "tiny_wan.json").is_file()


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo_id, allow_patterns=_PATTERNS))
    except Exception as exc:  # hub errors are many and untyped for our purpose
        raise VideoModelError(f"could not fetch '{repo_id}' from the Hugging Face Hub: {exc}") \
            from exc
