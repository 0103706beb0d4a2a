"""What the builder needs to know about one architecture: a :class:`Recipe`.

Contract: a recipe is pure data plus small pure functions. ``config(preset, ids)`` gives
config.json (``ids``: the tokenizer's special-token name -> id); ``tokenizer_config`` the
tokenizer_config.json dict; ``processor_files(preset, config)`` the extra JSON files by
name; ``fix_weights(weights, config)`` adjusts the seeded random weights where a family
needs it (Gemma's embedding scale, gates that start closed); ``tied`` names parameters
that alias another one (not counted). The builder (:mod:`.builder`) does the rest the
same way for every family: tokenizer, weights from the library's own model class, files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .tokenizer import TokenizerSpec

Weights = dict[str, Any]  # parameter name -> mx.array


@dataclass(frozen=True)
class TinyArch:
    """One supported architecture.

    ``loader`` is the package whose ``load`` opens the folder ("mlx_vlm" or "mlx_lm");
    ``family`` names the tokenizer / template / processor family it shares files with.
    """

    name: str
    is_vision: bool
    supports_video: bool
    loader: str
    family: str
    notes: str = ""


def _no_files(preset: str, config: dict) -> dict[str, dict]:
    return {}


@dataclass(frozen=True)
class Recipe:
    arch: TinyArch
    config: Callable[[str, dict[str, int]], dict]
    tokenizer: TokenizerSpec
    tokenizer_config: dict
    processor_files: Callable[[str, dict], dict[str, dict]] = _no_files
    fix_weights: Callable[[Weights, dict], Weights] | None = None
    tied: frozenset[str] = frozenset()
    presets: tuple[str, ...] = ("tiny", "small")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.arch.name
