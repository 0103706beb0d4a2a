"""What loading a model takes and gives: :class:`LoadOptions` and :class:`LoadedModel`.

Types only, importing nothing else of the engine, so the modules that read a loaded model
(tokens, constraints, sampling, sharding) need not import the loader that makes one. The
grammar compiler for JSON-constrained output is built on first use by a factory the loader
injects (``grammar``), which keeps the constraint machinery out of this module's imports;
the loader of a distributed rank's shard is injected by whoever makes the group
(``LoadOptions.shard``), so the engine never imports :mod:`vllm_mlx.distributed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .detect import Capabilities, Detection, ModelKind

# (folder, config, kind, options) -> (model, processor, tokenizer): this process's shard
ShardLoader = Callable[[Path, dict[str, Any], ModelKind, "LoadOptions"], tuple[Any, Any, Any]]


@dataclass(frozen=True)
class LoadOptions:
    force_kind: ModelKind | None = None
    served_name: str | None = None
    trust_remote_code: bool = False
    tiny_cache_dir: Path | None = None
    group: Any = None  # an mx.distributed group of size > 1: load this process's shard
    parallel: str = "tensor"  # with ``group``: "tensor" or "pipeline"
    shard: ShardLoader | None = None  # with ``group``: vllm_mlx.distributed's load_sharded


@dataclass
class LoadedModel:
    """A model ready for generation, with everything needed to template and decode."""

    reference: str
    path: Path
    model: Any
    processor: Any  # mlx-vlm processor for vision models, TokenizerWrapper for text
    tokenizer: Any
    config: dict[str, Any]
    detection: Detection
    capabilities: Capabilities
    random_weights: bool = False
    grammar: Callable[[LoadedModel], Any] | None = field(default=None, repr=False)
    # what other layers work out once per model (its tool-call format, whether its template
    # opens reasoning), kept with it so it goes when the model is unloaded
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def is_vision(self) -> bool:
        return self.detection.kind is ModelKind.VISION

    @cached_property
    def media_markers(self) -> tuple[str, ...]:
        """Special tokens that stand for media; text must never smuggle them in."""
        decoder = getattr(self.tokenizer, "added_tokens_decoder", None) or {}
        found = {t.content for t in decoder.values() if getattr(t, "special", False)
                 and any(k in t.content.lower() for k in ("image", "video", "vision"))}
        for name in ("image_token", "video_token", "boi_token", "eoi_token"):
            marker = getattr(self.processor, name, None)
            if isinstance(marker, str) and marker:
                found.add(marker)
        return tuple(sorted(found, key=len, reverse=True))

    @property
    def vocab_size(self) -> int:
        text = self.config.get("text_config") or {}
        size = self.config.get("vocab_size") or text.get("vocab_size")
        return int(size) if size else len(self.tokenizer)

    @cached_property
    def chat_takes_typed_parts(self) -> bool:
        """Whether the processor's chat template renders typed content parts."""
        from .chat_format import takes_typed_parts

        return takes_typed_parts(self.processor)

    @cached_property
    def grammar_compiler(self) -> Any:
        """Built on first use of JSON-constrained output, then reused."""
        if self.grammar is None:
            raise RuntimeError(f"{self.reference} was loaded without a grammar compiler")
        return self.grammar(self)

    @property
    def video_min_frames(self) -> int:
        """Frames a native-video model needs at least (its temporal patch size)."""
        vision = self.config.get("vision_config") or {}
        size = vision.get("temporal_patch_size", 1) if self.capabilities.native_video else 1
        return max(1, int(size))
