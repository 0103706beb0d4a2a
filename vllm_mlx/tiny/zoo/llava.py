# ruff: noqa: E501
"""Tiny LLaVA (1.5) and LLaVA-NeXT recipes, opened with ``mlx_vlm.load``.

Facts these rest on (mlx-vlm 0.7.10, transformers 5):
- Language model ``llama`` (64 wide, 2 layers, vocab 1024); vision tower
  ``clip_vision_model`` on 32-px images with 8-px patches: 16 patches + CLS, and the
  ``default`` feature strategy drops the CLS, so one LLaVA image is 16 ``<image>`` tokens.
- The tokenizer is SentencePiece-like (``<unk> <s> </s>`` first, ``<s>`` prepended) with
  ``<image>`` and ``<pad>`` as specials; the processor expands each ``<image>``.
- ``processor_config.json`` gives ``patch_size``, ``num_additional_image_tokens: 1`` and
  ``vision_feature_select_strategy``; the image processor is ``CLIPImageProcessor``
  (LLaVA) / ``LlavaNextImageProcessor`` with 32/64-px grid pinpoints (LLaVA-NeXT).
- mlx-vlm 0.7.10's ``LlavaProcessor`` forwards tokenizer kwargs (``padding``) to the image
  processor, which transformers 5 refuses; the engine works around it
  (:mod:`vllm_mlx.engine.inputs`).
- LLaVA-NeXT: mlx-vlm reads only the first image of a prompt, and its merge gives more
  embeddings than token ids (the base and crop features plus a newline row).
"""

from __future__ import annotations

from functools import partial

from ..archs import LM_SHAPES, lm_dims, vision_dims
from ..recipe import (
    CLIP_MEAN,
    CLIP_STD,
    Recipe,
    Weights,
    from_first_row,
    processor_files_of,
    tokenizer_config_of,
)
from ..tokenizer import TokenizerSpec
from .common import zoo_recipe

IMAGE_SIZE, PATCH = 32, 8

TOKENIZER = TokenizerSpec(
    "spm", None, False, ("<unk>", "<s>", "</s>"), ("<image>", "<pad>"), (), "<s>"
)

# llava-hf/llava-1.5: images first, then the text, "USER: ... ASSISTANT:".
LLAVA_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] != 'system' -%}{{- message['role'].upper() + ': ' -}}{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] + ' ' -}}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}{%- if item['type'] == 'image' -%}{{- '<image>\n' -}}{%- endif -%}{%- endfor -%}"
    "{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{- item['text'] + ' ' -}}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

# llava-hf/llava-v1.6-mistral: "[INST] <image>\n... [/INST]".
LLAVA_NEXT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- '[INST] ' -}}{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}{%- if item['type'] == 'image' -%}{{- '<image>\n' -}}{%- endif -%}{%- endfor -%}"
    "{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}{{- ' [/INST]' -}}{%- else -%}{{- '</s>' -}}{%- endif -%}"
    "{%- endfor -%}"
)


def tokenizer_config(template: str) -> dict:
    return tokenizer_config_of(
        template, add_bos_token=True, add_eos_token=False, bos_token="<s>", eos_token="</s>",
        unk_token="<unk>", pad_token="<pad>", model_max_length=4096, padding_side="left")


def llama_text(preset: str) -> dict:
    """The ``llama`` text_config shared by both archs."""
    return {
        "model_type": "llama",
        **lm_dims(preset),
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "max_position_embeddings": 4096,
        "vocab_size": LM_SHAPES[preset]["vocab"],
        "tie_word_embeddings": False,
    }


def clip_vision(preset: str) -> dict:
    return {
        "model_type": "clip_vision_model",
        **vision_dims(preset),
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
        "projection_dim": LM_SHAPES[preset]["hidden"],
        "num_channels": 3,
        "layer_norm_eps": 1e-05,
    }


def config(arch: str, preset: str, ids: dict[str, int]) -> dict:
    out = {
        "architectures": [
            "LlavaForConditionalGeneration" if arch == "llava"
            else "LlavaNextForConditionalGeneration"
        ],
        "model_type": arch,
        "image_token_index": ids["<image>"],
        "pad_token_id": ids["<pad>"],
        "bos_token_id": ids["<s>"],
        "eos_token_id": ids["</s>"],
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "vocab_size": LM_SHAPES[preset]["vocab"],
        "text_config": llama_text(preset),
        "vision_config": clip_vision(preset),
    }
    if arch == "llava_next":
        out["image_grid_pinpoints"] = PINPOINTS
    return out


PINPOINTS = [[IMAGE_SIZE, IMAGE_SIZE], [IMAGE_SIZE, 2 * IMAGE_SIZE], [2 * IMAGE_SIZE, IMAGE_SIZE]]


def image_processor(arch: str) -> dict:
    common = {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "do_center_crop": True,
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": IMAGE_SIZE},
    }
    if arch == "llava":
        return {**common, "image_processor_type": "CLIPImageProcessor",
                "processor_class": "LlavaProcessor"}
    return {**common, "image_processor_type": "LlavaNextImageProcessor",
            "processor_class": "LlavaNextProcessor", "do_pad": True,
            "image_grid_pinpoints": PINPOINTS}


def processor_files(arch: str, template: str, preset: str, config: dict) -> dict[str, dict]:
    image = image_processor(arch)
    processor = {
        "processor_class": image["processor_class"],
        "image_token": "<image>",
        "patch_size": PATCH,
        "num_additional_image_tokens": 1,
        "vision_feature_select_strategy": "default",
    }
    return processor_files_of(image, processor=processor, template=template)


def fix_weights(weights: Weights, config: dict) -> Weights:
    """LLaVA-NeXT's ``image_newline`` (1-D, so not redrawn from the seed) starts from the
    global random state: take it from a seeded matrix so rebuilds are identical."""
    if "image_newline" not in weights:
        return weights
    return from_first_row(weights, "image_newline", "multi_modal_projector.linear_2.weight")


def _recipe(arch: str, template: str, notes: str) -> Recipe:
    return zoo_recipe(arch, notes, config=partial(config, arch), tokenizer=TOKENIZER,
                      tokenizer_config=tokenizer_config(template),
                      processor_files=partial(processor_files, arch, template),
                      fix_weights=fix_weights)


RECIPES = (
    _recipe("llava", LLAVA_TEMPLATE,
            "LLaVA 1.5: Llama + CLIP (32 px, patch 8): 16 tokens per image."),
    _recipe("llava_next", LLAVA_NEXT_TEMPLATE,
            "LLaVA-NeXT: Llama + CLIP with 32/64-px grid pinpoints; mlx-vlm takes one image."),
)
