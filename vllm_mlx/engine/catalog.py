"""The models a server may load: those named on the command line, and the model folders
found under ``--models-dir`` and in the local Hugging Face cache (``--hf-cache``).

Contract: :func:`named_specs` turns ``MODEL`` / ``NAME=MODEL`` arguments into
:class:`ModelSpec` (named by what the user gave, or by ``NAME``);
:func:`folder_specs` lists every model folder under a directory (a folder with a
``config.json`` and ``*.safetensors`` weights, named by its path relative to the
directory); :func:`hub_cache_specs` lists the repos of a Hugging Face cache (named by
their repo id, loaded from their newest snapshot). Sizes and kinds (text / vision) come
from the files, with no model loaded. Diffusion video folders are left out (they are
served by ``--video-model``). Nothing here loads MLX.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .detect import ModelKind, detect_model_kind
from .errors import ModelLoadError
from .loader import TINY_PREFIX, read_config


@dataclass(frozen=True)
class ModelSpec:
    """A model the server may load: ``name`` is what clients send, ``reference`` what loads
    it (``tiny:ARCH``, a Hub repo id, a folder); ``size_bytes``: its weights on disk, when
    known before loading."""

    name: str
    reference: str
    size_bytes: int | None = None
    kind: str | None = None  # "text" / "vision", when its config says so before loading


SCAN_DEPTH = 3  # folders below --models-dir searched for models (org/name/revision)


def split_alias(argument: str) -> tuple[str | None, str]:
    """``NAME=MODEL`` -> (NAME, MODEL); a plain ``MODEL`` -> (None, MODEL). A folder path
    holding '=' is taken whole when it exists."""
    name, sep, reference = argument.partition("=")
    if not sep or not name or not reference or Path(argument).expanduser().exists():
        return None, argument
    return name, reference


def named_specs(arguments: Sequence[str], tiny_cache_dir: Path | None = None
                ) -> list[ModelSpec]:
    """The models given on the command line, in order (the first is the default)."""
    specs = []
    for argument in arguments:
        name, reference = split_alias(argument)
        if reference.startswith(TINY_PREFIX):
            specs.append(_tiny_spec(name or reference, reference, tiny_cache_dir))
            continue
        local = Path(reference).expanduser()
        folder = local if (local / "config.json").is_file() else None
        specs.append(ModelSpec(name or reference, reference,
                               weights_size(folder) if folder else None,
                               _kind(folder) if folder else None))
    return specs


def _tiny_spec(name: str, reference: str, cache_dir: Path | None) -> ModelSpec:
    """A ``tiny:ARCH`` model: its kind from the builder's registry, its size once built."""
    from ..tiny import ARCHITECTURES
    from ..tiny.builder import tiny_model_folder
    from ..tiny.quantize import parse_reference

    try:
        arch, preset, bits = parse_reference(reference[len(TINY_PREFIX):])
    except ValueError:
        return ModelSpec(name, reference)  # its load reports what is wrong
    known = ARCHITECTURES.get(arch)
    folder = tiny_model_folder(arch, preset, cache_dir=cache_dir, quantize=bits)
    return ModelSpec(name, reference, weights_size(folder) or None,
                     None if known is None else "vision" if known.is_vision else "text")


def folder_specs(root: Path) -> list[ModelSpec]:
    """Every model folder under ``root``, named by its path relative to it."""
    root = root.expanduser().resolve()
    return [ModelSpec(folder.relative_to(root).as_posix(), str(folder),
                      weights_size(folder), _kind(folder))
            for folder in sorted(_model_folders(root, SCAN_DEPTH))]


def _model_folders(folder: Path, depth: int) -> Iterable[Path]:
    if _is_chat_model(folder):
        yield folder
        return
    if depth == 0:
        return
    try:
        children = [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")]
    except OSError:
        return
    for child in children:
        yield from _model_folders(child, depth - 1)


def hub_cache_specs(cache: Path | None = None) -> list[ModelSpec]:
    """The model repos of a Hugging Face cache (default: the one huggingface_hub uses)."""
    root = (cache or _default_hub_cache()).expanduser()
    specs = []
    for repo in sorted(root.glob("models--*--*")):
        snapshot = _newest_snapshot(repo)
        if snapshot is not None and _is_chat_model(snapshot):
            repo_id = repo.name[len("models--"):].replace("--", "/", 1)
            specs.append(ModelSpec(repo_id, repo_id, weights_size(snapshot), _kind(snapshot)))
    return specs


def _default_hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(os.fspath(constants.HF_HUB_CACHE))


def _newest_snapshot(repo: Path) -> Path | None:
    snapshots = [s for s in (repo / "snapshots").glob("*") if s.is_dir()]
    return max(snapshots, key=lambda s: s.stat().st_mtime, default=None)


def _is_chat_model(folder: Path) -> bool:
    """A folder with a config and safetensors weights, and not a diffusion pipeline."""
    return ((folder / "config.json").is_file() and not (folder / "model_index.json").exists()
            and any(folder.glob("*.safetensors")))


def _kind(folder: Path) -> str | None:
    try:
        config = read_config(folder)
    except (ModelLoadError, ValueError):  # (ValueError: not UTF-8)
        return None
    detection = detect_model_kind(config, folder.name)
    return "vision" if detection.kind is ModelKind.VISION else "text"


def weights_size(path: Path | str) -> int:
    """Bytes of a model folder's weights (``*.safetensors``, else every file)."""
    folder = Path(path)
    if not folder.is_dir():
        return 0
    weights = list(folder.glob("*.safetensors"))
    files = weights or [p for p in folder.rglob("*") if p.is_file()]
    return sum(_size(p) for p in files)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size  # follows the Hub cache's symlinks to the blobs
    except OSError:
        return 0
