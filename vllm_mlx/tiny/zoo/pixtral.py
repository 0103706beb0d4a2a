# ruff: noqa: E501
"""Tiny Pixtral and Mistral 3 (Mistral-Small-3.1 vision) recipes, opened with ``mlx_vlm.load``.

Facts these rest on (mlx-vlm 0.7.10, transformers 5):
- Language model ``mistral`` (64 wide, 2 layers, vocab 1024); vision tower ``pixtral`` with
  8-px patches and ``head_dim`` = width / heads (2D RoPE over the patch grid).
- ``PixtralImageProcessor`` resizes to ``size.longest_edge`` 32 (Pixtral) / 64 (Mistral 3),
  keeping the aspect ratio; ``processor_config.json`` gives ``spatial_merge_size`` 1 / 2 and
  the ``[IMG]``, ``[IMG_BREAK]``, ``[IMG_END]`` tokens: one ``[IMG]`` per (merged) patch, a
  break after each row, an end after the image.
- Tekken-like tokenizer: byte-level BPE after the first control tokens, so ``[IMG]`` is id 10
  as in the real models; the template writes ``<s>[INST]...[/INST]``.
"""

from __future__ import annotations

from functools import partial

from ..archs import LM_SHAPES, VISION_SHAPES, lm_dims
from ..recipe import (
    CLIP_MEAN,
    CLIP_STD,
    Recipe,
    image_processor,
    processor_files_of,
    tokenizer_config_of,
)
from ..tokenizer import QWEN_SPLIT, TokenizerSpec
from .common import zoo_recipe

PATCH = 8
_LONGEST = {"pixtral": 32, "mistral3": 64}
_MERGE = {"pixtral": 1, "mistral3": 2}
_CONTROL = ("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]",
            "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]",
            "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]",
            "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]")
TOKENIZER = TokenizerSpec("bytelevel", QWEN_SPLIT, False, _CONTROL)

TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{- '[SYSTEM_PROMPT]' + (message['content'] if message['content'] is string else message['content'][0]['text']) + '[/SYSTEM_PROMPT]' -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '[INST]' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for chunk in message['content'] -%}"
    "{%- if chunk['type'] == 'text' -%}{{- chunk['text'] -}}{%- elif chunk['type'] == 'image' -%}{{- '[IMG]' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '[/INST]' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for chunk in message['content'] -%}{{- chunk['text'] -}}{%- endfor -%}{%- endif -%}"
    "{{- eos_token -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

TOKENIZER_CONFIG = tokenizer_config_of(
    TEMPLATE, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
    model_max_length=131072)


def _text(preset: str) -> dict:
    s = LM_SHAPES[preset]
    return {
        "model_type": "mistral",
        **lm_dims(preset),
        "head_dim": s["head_dim"],
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000000.0,
        "max_position_embeddings": 131072,
        "vocab_size": s["vocab"],
        "tie_word_embeddings": False,
        "sliding_window": None,
    }


def _vision(arch: str, preset: str) -> dict:
    v = VISION_SHAPES[preset]
    return {
        "model_type": "pixtral",
        "hidden_size": v["width"],
        "head_dim": v["width"] // v["heads"],
        "intermediate_size": v["inter"],
        "num_hidden_layers": v["depth"],
        "num_attention_heads": v["heads"],
        "image_size": _LONGEST[arch],
        "patch_size": PATCH,
        "num_channels": 3,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
    }


def config(arch: str, preset: str, ids: dict[str, int]) -> dict:
    out = {
        "architectures": ["LlavaForConditionalGeneration" if arch == "pixtral"
                          else "Mistral3ForConditionalGeneration"],
        "model_type": arch,
        "image_token_index": ids["[IMG]"],
        "bos_token_id": ids["<s>"],
        "eos_token_id": ids["</s>"],
        "pad_token_id": ids["<pad>"],
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
        "vocab_size": LM_SHAPES[preset]["vocab"],
        "text_config": _text(preset),
        "vision_config": _vision(arch, preset),
    }
    if arch == "mistral3":
        out.update(spatial_merge_size=_MERGE[arch], multimodal_projector_bias=False)
    return out


def processor_files(arch: str, preset: str, config: dict) -> dict[str, dict]:
    processor_class = "PixtralProcessor" if arch == "pixtral" else "Mistral3Processor"
    image = image_processor(
        "PixtralImageProcessor", processor_class, mean=CLIP_MEAN, std=CLIP_STD,
        do_convert_rgb=True, patch_size={"height": PATCH, "width": PATCH}, resample=3,
        size={"longest_edge": _LONGEST[arch]})
    processor = {
        "processor_class": processor_class,
        "patch_size": PATCH,
        "spatial_merge_size": _MERGE[arch],
        "image_token": "[IMG]",
        "image_break_token": "[IMG_BREAK]",
        "image_end_token": "[IMG_END]",
    }
    return processor_files_of(image, processor=processor, template=TEMPLATE)


def _recipe(arch: str, notes: str) -> Recipe:
    return zoo_recipe(arch, notes, config=partial(config, arch), tokenizer=TOKENIZER,
                      tokenizer_config=TOKENIZER_CONFIG,
                      processor_files=partial(processor_files, arch))


RECIPES = (
    _recipe("pixtral", "Pixtral: Mistral + Pixtral tower (longest edge 32, patch 8): up to "
            "16 [IMG] tokens plus row breaks."),
    _recipe("mistral3", "Mistral 3: Mistral + Pixtral tower (longest edge 64, patch 8), "
            "2x2 patch merge: up to 16 [IMG] tokens plus row breaks."),
)
