"""Decide whether a model is vision-language, and what it can do.

Pure functions over a model's ``config.json`` dict and its name; no I/O, no MLX. The
config decides first (a vision/audio sub-config, multimodal token ids, a known
multimodal architecture or model type); the name is consulted only when the config is
missing or says nothing either way. A caller's explicit choice overrides both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ModelKind(str, Enum):
    TEXT = "text"
    VISION = "vision"


@dataclass(frozen=True)
class Detection:
    kind: ModelKind
    reason: str


@dataclass(frozen=True)
class Capabilities:
    """What a loaded model can take as input; served through ``/v1/models``."""

    vision: bool
    video: bool
    native_video: bool
    context_length: int | None
    model_type: str
    served_name: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    quantization_bits: int | None = None  # weights quantized to this many bits
    max_images: int | None = None  # images one prompt may carry (None: no family limit)

    @property
    def input_modalities(self) -> tuple[str, ...]:
        return ("text", "image", "video") if self.vision else ("text",)


_VISION_SUBCONFIGS = ("vision_config", "vision_tower_config", "visual", "audio_config",
                      "speech_config", "image_encoder_config", "mm_vision_tower")
_MEDIA_TOKEN_KEYS = ("image_token_id", "image_token_index", "video_token_id",
                     "video_token_index", "image_token", "boi_token_index",
                     "mm_tokens_per_image", "audio_token_id")
_VISION_MODEL_TYPES = frozenset({
    "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen2_5_omni", "qwen3_omni_moe",
    "gemma3", "gemma3n", "gemma4", "paligemma", "llava", "llava_next", "llava_onevision",
    "llava_qwen2", "idefics2", "idefics3", "smolvlm", "mllama", "pixtral", "mistral3",
    "molmo", "deepseek_vl_v2", "deepseekocr", "florence2", "phi3_v", "phi4mm",
    "phi4_multimodal", "minicpmv", "internvl_chat", "aya_vision", "kimi_vl", "glm4v",
    "glm4v_moe", "llama4", "multi_modality", "bunny-llama", "lfm2_vl",
})
_VISION_ARCH_PATTERN = re.compile(
    r"(ForConditionalGeneration|VisionEncoderDecoder|VLForCausalLM|Vision|Llava|"
    r"Multimodal|MultiModal|ImageText|VLM|Omni)", re.IGNORECASE)
_TEXT_ONLY_ARCH_PATTERN = re.compile(r"ForCausalLM$")
# Name patterns, checked only when the config is silent.
_VISION_NAME_PATTERN = re.compile(
    r"(?:^|[-_/.\s])(vl|vlm|vision|mllm|multimodal|omni|llava|smolvlm|idefics|paligemma|"
    r"pixtral|molmo|minicpm-?v|internvl|florence|deepseek-?vl|qwen\d(?:\.\d)?-?vl|"
    r"cogvlm|moondream|gemma-?3n|gemma-?3-(?:4|12|27)b|gemma-?4|llama-?4|"
    r"llama-?3\.2-\d+b-vision|phi-?\d(?:\.\d)?-(?:multimodal|vision)|aya-vision|"
    r"kimi-vl|glm-?4\.?\dv|lfm2-vl|qwen3\.[5-9])",
    re.IGNORECASE)


def detect_from_config(config: Mapping[str, Any]) -> Detection | None:
    """Decide from ``config.json`` alone; ``None`` when it gives no signal."""
    for key in _VISION_SUBCONFIGS:
        if config.get(key):
            return Detection(ModelKind.VISION, f"config has '{key}'")
    for key in _MEDIA_TOKEN_KEYS:
        if config.get(key) is not None:
            return Detection(ModelKind.VISION, f"config has '{key}'")
    model_type = str(config.get("model_type", "")).lower()
    if model_type in _VISION_MODEL_TYPES:
        return Detection(ModelKind.VISION, f"model_type '{model_type}' is multimodal")
    architectures = [str(a) for a in config.get("architectures") or []]
    for arch in architectures:
        if _VISION_ARCH_PATTERN.search(arch):
            return Detection(ModelKind.VISION, f"architecture '{arch}' is multimodal")
    says_text = model_type or any(_TEXT_ONLY_ARCH_PATTERN.search(a) for a in architectures)
    if says_text and not isinstance(config.get("text_config"), Mapping):
        return Detection(ModelKind.TEXT, f"model_type '{model_type}' is text-only")
    return None


def detect_from_name(name: str) -> Detection | None:
    """Decide from a repo id or folder name; ``None`` when it says nothing."""
    match = _VISION_NAME_PATTERN.search(name)
    if match:
        return Detection(ModelKind.VISION, f"name contains '{match.group(1)}'")
    return None


def detect_model_kind(
    config: Mapping[str, Any] | None, name: str, force: ModelKind | None = None
) -> Detection:
    """Text or vision-language: a forced choice, then the config, then the name."""
    if force is not None:
        return Detection(force, "forced by the caller")
    if config:
        decided = detect_from_config(config)
        if decided is not None:
            return decided
    by_name = detect_from_name(name)
    if by_name is not None:
        return by_name
    return Detection(ModelKind.TEXT, "no multimodal signal in config or name")


# Families whose MLX implementation reads fewer images than a prompt may carry (mlx-vlm
# 0.7.10's LLaVA-NeXT encodes ``pixel_values[0]`` only): more are refused, never ignored.
_MAX_IMAGES = {"llava_next": 1}


def max_images(config: Mapping[str, Any]) -> int | None:
    """Images one prompt may carry for this family; None when it sets no limit."""
    return _MAX_IMAGES.get(str(config.get("model_type", "")).lower())


def quantization_bits(config: Mapping[str, Any]) -> int | None:
    """Bits per weight of an MLX-quantized model (mlx-lm / mlx-vlm ``convert -q``)."""
    for key in ("quantization", "quantization_config"):
        spec = config.get(key)
        if isinstance(spec, Mapping) and isinstance(spec.get("bits"), int):
            return int(spec["bits"])
    return None


def context_length(config: Mapping[str, Any]) -> int | None:
    """The longest context the config declares, looking into ``text_config`` too."""
    keys = ("max_position_embeddings", "max_sequence_length", "seq_length", "n_positions")
    for source in (config, config.get("text_config") or {}):
        for key in keys:
            value = source.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


def supports_native_video(config: Mapping[str, Any]) -> bool:
    """True for families whose processor takes video input directly."""
    return config.get("video_token_id") is not None or config.get("video_token_index") is not None
