"""Load this process's shard of a model, with the libraries' own sharding.

- Text models: mlx-lm's ``sharded_load`` (tensor parallel through the model's
  ``shard()``; pipeline parallel through its ``pipeline()``: qwen2, deepseek, glm4-moe,
  qwen3-moe, ... in mlx-lm 0.32). Weights are loaded lazily, so each rank reads only what
  its shard keeps.
- Vision-language models: mlx-vlm's ``load`` (lazy), then the language model's own
  ``shard()`` where mlx-vlm defines one; the vision tower stays whole on every rank (each
  rank encodes the request's media itself, so every rank sees the same embeddings).
  Pipeline parallelism is not offered for them.

Every refusal is a :class:`ModelLoadError` saying what would be needed. The function ends
with a barrier: a rank returns only when every rank has its shard.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..engine._mlx import mx
from ..engine.detect import ModelKind
from ..engine.errors import ModelLoadError
from ..engine.loaded import LoadOptions

logger = logging.getLogger(__name__)


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("text_config") or config


def check_tensor_split(config: dict[str, Any], size: int) -> None:
    """Refuse a tensor split that would not divide the heads and the MLP evenly."""
    text = _text_config(config)
    heads = text.get("num_attention_heads")
    dims = {"attention heads": heads,
            "KV heads": text.get("num_key_value_heads", heads),
            "MLP width": text.get("intermediate_size")}
    uneven = {name: n for name, n in dims.items() if isinstance(n, int) and n % size}
    if uneven:
        shown = ", ".join(f"{name} ({n})" for name, n in uneven.items())
        raise ModelLoadError(f"tensor parallelism over {size} ranks needs {shown} divisible "
                             f"by {size}: use another number of hosts or --parallel pipeline")


def _barrier(group: Any) -> None:
    mx.eval(mx.distributed.all_sum(mx.array(1.0), group=group, stream=mx.cpu))


def _load_text(path: Path, config: dict[str, Any], options: LoadOptions) -> tuple[Any, Any]:
    from mlx_lm.utils import sharded_load

    group = options.group
    pipeline = options.parallel == "pipeline"
    if pipeline and not (path / "model.safetensors.index.json").is_file():
        raise ModelLoadError(f"pipeline parallelism needs {path}/model.safetensors.index.json "
                             "(mlx-lm picks each rank's weight files from it); convert the "
                             "model with mlx_lm.convert, or use --parallel tensor")
    if not pipeline:
        check_tensor_split(config, group.size())
    try:
        model, tokenizer = sharded_load(
            str(path), pipeline_group=group if pipeline else None,
            tensor_group=None if pipeline else group,
            tokenizer_config={"trust_remote_code": options.trust_remote_code},
            trust_remote_code=options.trust_remote_code)
    except ValueError as exc:  # "does not support pipelining / tensor parallelism"
        raise ModelLoadError(f"mlx-lm cannot split {config.get('model_type')} this way "
                             f"({options.parallel} parallel): {exc}") from exc
    return model, tokenizer


def _load_vision(path: Path, config: dict[str, Any], options: LoadOptions
                 ) -> tuple[Any, Any, Any]:
    import mlx_vlm

    model_type = config.get("model_type")
    if options.parallel == "pipeline":
        raise ModelLoadError(f"pipeline parallelism is not available for vision-language "
                             f"models ({model_type}); use --parallel tensor")
    model, processor = mlx_vlm.load(str(path), lazy=True,
                                     trust_remote_code=options.trust_remote_code)
    language = getattr(model, "language_model", None)
    if not callable(getattr(language, "shard", None)):
        raise ModelLoadError(
            f"mlx-vlm {mlx_vlm.__version__} cannot split the language model of {model_type} "
            "(it has no shard()): serve this model on one machine")
    check_tensor_split(config, options.group.size())
    assert language is not None
    language.shard(options.group)
    mx.eval(model.parameters())
    _barrier(options.group)
    return model, processor, getattr(processor, "tokenizer", processor)


def load_sharded(path: Path, config: dict[str, Any], kind: ModelKind, options: LoadOptions
                 ) -> tuple[Any, Any, Any]:
    """(model, processor, tokenizer) holding this rank's shard; ModelLoadError if it cannot."""
    if options.parallel not in ("tensor", "pipeline"):
        raise ModelLoadError(f"unknown parallel mode {options.parallel!r}: tensor or pipeline")
    group = options.group
    logger.info("loading rank %d/%d's %s-parallel shard of %s", group.rank(), group.size(),
                options.parallel, path)
    try:
        if kind is ModelKind.VISION:
            return _load_vision(path, config, options)
        model, tokenizer = _load_text(path, config, options)
        return model, tokenizer, tokenizer
    except ModelLoadError:
        raise
    except RuntimeError as exc:  # a rank lost while loading: the barrier fails
        raise ModelLoadError(f"loading the shards failed: {exc}") from exc
    except Exception as exc:  # library load failures carry no common type
        raise ModelLoadError(f"failed to load a shard of {path}: {exc}") from exc
