# ruff: noqa: E501
"""Tiny recipe for Llama 3.2 Vision (``mllama``), opened with ``mlx_vlm.load``.

Contract: ``RECIPES`` holds one tiny-only recipe, ``mllama``, whose folder mlx-vlm 0.7.10
loads and generates from with an image (transformers 5 validates its config):

- text ``mllama_text_model``: ``LM_SHAPES["tiny"]`` width, 3 layers with
  ``cross_attention_layers: [1]`` (self, cross, self), Llama 3 rope scaling;
- vision ``mllama_vision_model``: 32 px tiles of 8 px patches, up to 4 tiles, 2 local
  layers and 1 global layer, ``intermediate_layers_indices`` [0, 1], so
  ``vision_output_dim`` = 32 * 3 = 96; the heads are given both as ``attention_heads``
  (transformers) and ``num_attention_heads`` (mlx-vlm); ``max_aspect_ratio_id`` is left out
  (transformers 5: "property has no setter");
- the Llama 3 tokenizer plus ``<|image|>`` (inside the vocabulary, so every id the model
  can emit decodes); a Llama-3.2-Vision-like chat template writing ``<|image|>`` for each
  image part;
- ``MllamaImageProcessor`` files (mlx-vlm installs its own ``MllamaProcessor``).

mlx-vlm initialises every tanh gate at 0 (the language model's cross-attention and
cross-MLP gates, the vision tower's position-embedding and global-layer gates), so the
image would never reach the language model and image parity would pass vacuously:
``_fix_weights`` sets them all to 1. It also takes the vision ``class_embedding`` (a 1-D
parameter the library draws from the global random state) from a seeded weight, so that
rebuilds are byte-identical.
"""

from __future__ import annotations

from dataclasses import replace

from ..archs import LM_SHAPES, VISION_SHAPES
from ..families import tokenizer_config, tokenizer_spec
from ..recipe import (
    CLIP_MEAN,
    CLIP_STD,
    Weights,
    from_first_row,
    image_processor,
    processor_files_of,
)
from .common import zoo_recipe

IMAGE_TOKEN = "<|image|>"
TILE, PATCH, MAX_TILES = 32, 8, 4
ASPECT_RATIOS = [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]
# The gates' parameter names end so; ``gate_proj`` (the MLPs' weights) must not match.
GATE_SUFFIXES = ("gate", "gate_attn", "gate_ffn", "cross_attn_attn_gate", "cross_attn_mlp_gate")
CLASS_EMBEDDING = "vision_tower.class_embedding"
POSITION_EMBEDDING = "vision_tower.gated_positional_embedding.embedding"  # (patches + 1, width)

MLLAMA_TEMPLATE = r"""{{- bos_token -}}
{%- for message in messages -%}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' -}}
    {%- if message['content'] is string -%}
        {{- message['content'] | trim -}}
    {%- else -%}
        {%- for content in message['content'] -%}
            {%- if content['type'] == 'image' -%}{{- '<|image|>' -}}
            {%- elif content['type'] == 'text' -%}{{- content['text'] | trim -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}{%- endif -%}
"""

_LLAMA3 = tokenizer_spec("llama3")
TOKENIZER = replace(_LLAMA3, specials=_LLAMA3.specials + (IMAGE_TOKEN,))


def mllama_config(preset: str, ids: dict[str, int]) -> dict:
    s, v = LM_SHAPES[preset], VISION_SHAPES[preset]
    eos = [ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]]
    layers = [0, 1]
    text = {
        "model_type": "mllama_text_model",
        "vocab_size": s["vocab"],
        "hidden_size": s["hidden"],
        "intermediate_size": s["inter"],
        "num_hidden_layers": 3,
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "cross_attention_layers": [1],
        "hidden_act": "silu",
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "dropout": 0,
        "use_cache": True,
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": eos,
        "pad_token_id": ids["<|finetune_right_pad_id|>"],
    }
    vision = {
        "model_type": "mllama_vision_model",
        "hidden_size": v["width"],
        "intermediate_size": v["inter"],
        "num_hidden_layers": v["depth"],
        "num_global_layers": 1,
        "attention_heads": v["heads"],
        "num_attention_heads": v["heads"],
        "hidden_act": "gelu",
        "image_size": TILE,
        "patch_size": PATCH,
        "num_channels": 3,
        "max_num_tiles": MAX_TILES,
        "norm_eps": 1e-05,
        "intermediate_layers_indices": layers,
        "vision_output_dim": v["width"] * (len(layers) + 1),
        "supported_aspect_ratios": ASPECT_RATIOS,
        "initializer_range": 0.02,
    }
    return {
        "architectures": ["MllamaForConditionalGeneration"],
        "model_type": "mllama",
        "image_token_index": ids[IMAGE_TOKEN],
        "text_config": text,
        "vision_config": vision,
    }


def mllama_files(preset: str, config: dict) -> dict[str, dict]:
    image = image_processor(
        "MllamaImageProcessor", "MllamaProcessor", mean=CLIP_MEAN, std=CLIP_STD,
        do_convert_rgb=True, do_pad=True, max_image_tiles=MAX_TILES, resample=2,
        size={"height": TILE, "width": TILE})
    return processor_files_of(image, template=MLLAMA_TEMPLATE)


def _fix_weights(weights: Weights, config: dict) -> Weights:
    """Every tanh gate at 1 (the image reaches the language model), and the vision
    tower's class embedding from the seeded weights (the library draws it from the
    global random state, which a rebuild does not repeat)."""
    import mlx.core as mx

    fixed = {k: mx.ones_like(w) if k.rsplit(".", 1)[-1] in GATE_SUFFIXES else w
             for k, w in weights.items()}
    return from_first_row(fixed, CLASS_EMBEDDING, POSITION_EMBEDDING)


RECIPES = (
    zoo_recipe(
        "mllama",
        "Llama 3.2 Vision: cross-attention layers read the image (tiles of 32 px); one "
        "image per prompt in mlx-vlm; tanh gates opened.",
        config=mllama_config,
        tokenizer=TOKENIZER,
        tokenizer_config={**tokenizer_config("llama3"), "chat_template": MLLAMA_TEMPLATE},
        processor_files=mllama_files,
        fix_weights=_fix_weights,
    ),
)
