"""What the builder needs to know about one architecture: a :class:`Recipe`.

Contract: a recipe is pure data plus small pure functions. ``config(preset, ids)`` gives
config.json (``ids``: the tokenizer's special-token name -> id); ``tokenizer_config`` the
tokenizer_config.json dict; ``processor_files(preset, config)`` the extra JSON files by
name; ``fix_weights(weights, config)`` adjusts the seeded random weights where a family
needs it (Gemma's embedding scale, gates that start closed); ``tied`` names parameters
that alias another one (not counted). The builder (:mod:`.builder`) does the rest the
same way for every family: tokenizer, weights from the library's own model class, files.

Shared pieces the families build their recipes from (each gives exactly the dict, and key
order, that the families wrote out by hand): :func:`tokenizer_config_of`,
:func:`image_processor`, :func:`processor_files_of`, the normalisation constants, and the
seeded-weight fixes :func:`gemma_embeddings` and :func:`from_first_row`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .tokenizer import TokenizerSpec

Weights = dict[str, Any]  # parameter name -> mx.array

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
HALF = [0.5, 0.5, 0.5]  # SigLIP-style mean and std


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


def tokenizer_config_of(template: str | None, tokenizer_class: str = "PreTrainedTokenizerFast",
                        **keys: Any) -> dict:
    """tokenizer_config.json: the chat template (none: left out), no clean-up, the class,
    then ``keys`` in the order given."""
    head = {} if template is None else {"chat_template": template}
    return {**head, "clean_up_tokenization_spaces": False, "tokenizer_class": tokenizer_class,
            **keys}


_STD_AFTER_MEAN = {"image_std": "image_mean_std"}


def image_processor(image_class: str, processor_class: str, *, mean: list[float],
                    std: list[float], **keys: Any) -> dict:
    """preprocessor_config.json of a transformers image processor that normalises, rescales
    by 1/255 and resizes, plus ``keys``; keys sorted, but ``image_std`` next to
    ``image_mean`` (the order the families' files have always had)."""
    data = {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": mean,
        "image_std": std,
        "image_processor_type": image_class,
        "processor_class": processor_class,
        "rescale_factor": 1 / 255,
        **keys,
    }
    return dict(sorted(data.items(), key=lambda kv: _STD_AFTER_MEAN.get(kv[0], kv[0])))


def processor_files_of(image: dict, *, video: dict | None = None,
                       processor: dict | None = None, template: str | None = None
                       ) -> dict[str, dict]:
    """The processor's files by name: preprocessor_config.json (``image``), the video one,
    processor_config.json (``processor``; by default just the image's processor class) and
    chat_template.json when there is a ``template``."""
    files = {"preprocessor_config.json": image}
    if video is not None:
        files["video_preprocessor_config.json"] = video
    files["processor_config.json"] = (
        processor if processor is not None else {"processor_class": image["processor_class"]})
    if template is not None:
        files["chat_template.json"] = {"chat_template": template}
    return files


def gemma_embeddings(weights: Weights, name: str) -> Any:
    """Gemma multiplies embeddings by sqrt(hidden): the seeded ones shrunk to match."""
    return weights[name] / math.sqrt(weights[name].shape[1])


def from_first_row(weights: Weights, target: str, source: str) -> Weights:
    """``target`` (a 1-D parameter the library draws from the global random state, which a
    rebuild does not repeat) taken from the first row of the seeded matrix ``source``."""
    return {**weights, target: weights[source][0]}
