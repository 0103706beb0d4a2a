"""Tiny DeepSeek-VL2 (deepseek-ai/deepseek-vl2-small layout) recipe, opened with
``mlx_vlm.load``.

Facts this rests on (mlx-vlm 0.7.10, transformers 5):
- transformers has no ``deepseek_vl_v2`` config class; mlx-vlm reads ``language_config``
  (DeepSeek-V2: multi-head latent attention and a mixture of experts after the first dense
  layer), ``vision_config`` (``model_type: vision``, a SigLIP ViT) and ``projector_config``
  (``downsample_mlp_gelu``: 2x2 patches concatenated, then an MLP).
- Tiles are 32 px with 8-px patches: 4x4 patches, 2x2 after downsampling. The processor
  (mlx-vlm's ``DeepseekVLV2Processor``, from ``processor_config.json``) picks the best of
  ``candidate_resolutions`` 32/64 for the local view, adds a 32-px global view, and writes
  one ``<image>`` id per feature, newline and view separator: 27 ids for a 2x2-tile image.
- The processor adds ``<｜▁pad▁｜>``, ``<image>``, grounding and chat tokens to the tokenizer
  when they are missing; all are in this vocabulary, so its length stays ``vocab_size``.
- The processor's own chat template (``default_chat_template``, which ignores
  ``chat_template.json``) takes string content only: typed parts print as a Python list.
  mlx-vlm formats DeepSeek-VL2 messages as text with ``<image>\\n`` markers
  (``MessageFormat.IMAGE_TOKEN_NEWLINE``) before rendering.
- ``image_newline`` and ``view_separator`` are 1-D parameters that mlx-vlm draws from the
  global random state; :func:`fix_weights` redraws them from the seed (byte-identical builds).
"""

from __future__ import annotations

import math

from ..archs import LM_SHAPES, VISION_SHAPES
from ..recipe import HALF, Recipe, Weights, tokenizer_config_of
from ..tokenizer import LLAMA3_SPLIT, TokenizerSpec
from .common import zoo_recipe

TILE, PATCH = 32, 8
RESOLUTIONS = [[TILE, TILE], [TILE, 2 * TILE], [2 * TILE, TILE], [2 * TILE, 2 * TILE]]
BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
SPECIALS = ("<image>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>",
            "<|User|>", "<|Assistant|>")

TOKENIZER = TokenizerSpec("bytelevel", LLAMA3_SPLIT, False, (BOS, EOS, PAD), SPECIALS, (), BOS)

# mlx-vlm's DeepseekVLV2Processor.default_chat_template (string content only).
TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|User|>:"
    "{% elif message['role'] == 'assistant' %}<|Assistant|>{% endif %} "
    "{{message['content']}}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|>:{% endif %}"
)

TOKENIZER_CONFIG = tokenizer_config_of(
    TEMPLATE, add_bos_token=True, add_eos_token=False, bos_token=BOS, eos_token=EOS,
    pad_token=PAD, unk_token=None, model_max_length=4096)


def _language(preset: str, ids: dict[str, int]) -> dict:
    s = LM_SHAPES[preset]
    return {
        "model_type": "deepseek_v2",
        "architectures": ["DeepseekV2ForCausalLM"],
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOS],
        "vocab_size": s["vocab"],
        "hidden_size": s["hidden"],
        "intermediate_size": s["inter"],
        "moe_intermediate_size": s["inter"] // 4,
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["heads"],
        "kv_lora_rank": s["hidden"] // 2,
        "q_lora_rank": None,
        "qk_rope_head_dim": s["head_dim"] // 2,
        "qk_nope_head_dim": s["head_dim"],
        "v_head_dim": s["head_dim"],
        "n_shared_experts": 1,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "routed_scaling_factor": 1.0,
        "topk_method": "greedy",
        "n_group": 1,
        "topk_group": 1,
        "scoring_func": "softmax",
        "moe_layer_freq": 1,
        "first_k_dense_replace": 1,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "tie_word_embeddings": False,
    }


def config(preset: str, ids: dict[str, int]) -> dict:
    v, hidden = VISION_SHAPES[preset], LM_SHAPES[preset]["hidden"]
    return {
        "architectures": ["DeepseekVLV2ForCausalLM"],
        "model_type": "deepseek_vl_v2",
        "candidate_resolutions": RESOLUTIONS,
        "global_view_pos": "head",
        "tile_tag": "2D",
        "bos_token_id": ids[BOS],
        "eos_token_id": [ids[EOS]],
        "pad_token_id": ids[PAD],
        "language_config": _language(preset, ids),
        "vision_config": {
            "model_type": "vision",
            "model_name": "siglip_so400m_patch14_384",
            "layers": v["depth"],
            "width": v["width"],
            "intermediate_size": v["inter"],
            "num_attention_heads": v["heads"],
            "mlp_ratio": v["inter"] / v["width"],
            "image_size": TILE,
            "patch_size": PATCH,
        },
        "projector_config": {
            "model_type": "mlp_projector",
            "projector_type": "downsample_mlp_gelu",
            "input_dim": v["width"],
            "n_embed": hidden,
            "depth": 2,
            "mlp_ratio": 2,
            "downsample_ratio": 2,
            "token_pooling": False,
        },
    }


def processor_files(preset: str, config: dict) -> dict[str, dict]:
    processor = {
        "processor_class": "DeepseekVLV2Processor",
        "candidate_resolutions": RESOLUTIONS,
        "patch_size": PATCH,
        "downsample_ratio": 2,
        "image_mean": HALF,
        "image_std": HALF,
        "normalize": True,
        "image_token": "<image>",
        "pad_token": PAD,
        "add_special_token": False,
        "sft_format": "deepseek",
        "mask_prompt": False,
        "ignore_id": -100,
    }
    return {"processor_config.json": processor}


def fix_weights(weights: Weights, config: dict) -> Weights:
    """Draw the 1-D separator embeddings from fixed keys (mlx-vlm uses the global state)."""
    import mlx.core as mx

    std = 1 / math.sqrt(config["projector_config"]["n_embed"])
    out = dict(weights)
    for i, name in enumerate(("image_newline", "view_separator")):
        shape = weights[name].shape
        out[name] = mx.random.normal(shape, key=mx.random.key(1000 + i)) * std
    return out


RECIPES: tuple[Recipe, ...] = (
    zoo_recipe(
        "deepseek_vl_v2",
        "DeepSeek-VL2: MLA + MoE language model, SigLIP tiles with a global view; its "
        "processor's template takes string content only.",
        config=config,
        tokenizer=TOKENIZER,
        tokenizer_config=TOKENIZER_CONFIG,
        processor_files=processor_files,
        fix_weights=fix_weights,
    ),
)
