"""Tiny Molmo (allenai/Molmo-7B-D layout) recipe, opened with ``mlx_vlm.load``.

Facts this rests on (mlx-vlm 0.7.10, transformers 5):
- transformers has no ``molmo`` config class: nothing validates config.json but mlx-vlm's
  ``ModelConfig``, which wants explicit ``text_config`` and ``vision_config`` dicts.
- Language model: 64 wide, 2 layers, fused QKV with bias, SwiGLU (``mlp_hidden_size`` is
  twice the FF width). Its embedding is ``embedding_size`` ids plus ``additional_vocab_size``
  new ones; the image tokens ``<im_start> <im_end> <im_patch> <im_col> <|image|>`` live in
  the new ones (the tokenizer's last ids, as in the real model), and the LM head covers only
  ``vocab_size`` = ``embedding_size`` ids, so the model never emits them.
- Vision: a ViT on 64-px crops with 8-px patches, features of layers [-1, -2] pooled 2x2 by
  attention: 4x4 = 16 features per crop. The image processor (mlx-vlm's own
  ``MolmoProcessor``, installed when a molmo model loads) reads ``preprocessor_config.json``:
  base size 64, patch 8, ``overlap_margins`` [2, 2], token length 4 x 4 (base 32 or margins 1
  fail with an index error).
- The processor puts an image's tokens *before* the whole prompt text (it ignores markers
  in the text; each image becomes its own batch row, so one image per prompt). mlx-vlm
  formats Molmo messages as plain text (``MessageFormat.TEXT_ONLY``).
- The chat template is the real one's shape: string content only, "User: ... Assistant:".
"""

from __future__ import annotations

from ..archs import LM_SHAPES, VISION_SHAPES
from ..recipe import CLIP_MEAN, CLIP_STD, Recipe, processor_files_of, tokenizer_config_of
from ..tokenizer import QWEN_SPLIT, TokenizerSpec
from .common import zoo_recipe

IMAGE_SIZE, PATCH, POOLED = 64, 8, 4
IMAGE_TOKENS = ("<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<|image|>")
ADDITIONAL_VOCAB = 8  # the new-embedding rows; the tokenizer's last 8 ids

TOKENIZER = TokenizerSpec(
    "bytelevel", QWEN_SPLIT, True, (), ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    end_specials=IMAGE_TOKENS,
)

# allenai/Molmo-7B-D-0924: "User: ... Assistant:" turns joined by spaces; string content.
TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- message['role'].capitalize() + ': ' + message['content'] -}}"
    "{%- if not loop.last -%}{{- ' ' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- ' Assistant:' -}}{%- endif -%}"
)

TOKENIZER_CONFIG = tokenizer_config_of(
    TEMPLATE, bos_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
    unk_token=None, model_max_length=4096)


def _text(preset: str) -> dict:
    s = LM_SHAPES[preset]
    base_vocab = s["vocab"] - ADDITIONAL_VOCAB
    return {
        "model_type": "molmo",
        "d_model": s["hidden"],
        "n_heads": s["heads"],
        "n_kv_heads": s["kv_heads"],
        "n_layers": s["layers"],
        "mlp_ratio": 4,
        "mlp_hidden_size": 2 * s["inter"],
        "act_output_multiplier": 0.5,
        "max_position_embeddings": 4096,
        "max_sequence_length": 4096,
        "vocab_size": base_vocab,
        "embedding_size": base_vocab,
        "additional_vocab_size": ADDITIONAL_VOCAB,
        "layer_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "weight_tying": False,
    }


def _vision(preset: str) -> dict:
    v, hidden = VISION_SHAPES[preset], LM_SHAPES[preset]["hidden"]
    side = IMAGE_SIZE // PATCH
    return {
        "model_type": "molmo",
        "image_default_input_size": [IMAGE_SIZE, IMAGE_SIZE],
        "image_patch_size": PATCH,
        "image_pos_patch_size": PATCH,
        "image_emb_dim": v["width"],
        "image_num_heads": v["heads"],
        "image_num_key_value_heads": v["heads"],
        "image_head_dim": v["width"] // v["heads"],
        "image_num_layers": v["depth"],
        "image_mlp_dim": v["inter"],
        "image_num_pos": side * side + 1,
        "image_norm_eps": 1e-05,
        "hidden_size": LM_SHAPES[preset]["inter"],
        "d_model": hidden,
        "vit_layers": [-1, -2],
        "image_pooling_h": 2,
        "image_pooling_w": 2,
        "image_pooling_2d": "attention-meanq",
        "image_padding_embed": "pad_and_partial_pad",
    }


def config(preset: str, ids: dict[str, int]) -> dict:
    return {
        "architectures": ["MolmoForCausalLM"],
        "model_type": "molmo",
        "eos_token_id": [ids["<|endoftext|>"]],
        "bos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "image_pooling_h": 2,
        "image_pooling_w": 2,
        "text_config": _text(preset),
        "vision_config": _vision(preset),
    }


def processor_files(preset: str, config: dict) -> dict[str, dict]:
    image = {
        "image_processor_type": "MolmoImageProcessor",
        "processor_class": "MolmoProcessor",
        "max_crops": 4,
        "overlap_margins": [2, 2],
        "base_image_input_size": [IMAGE_SIZE, IMAGE_SIZE],
        "image_token_length_w": POOLED,
        "image_token_length_h": POOLED,
        "image_patch_size": PATCH,
        "image_padding_mask": True,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
    }
    return processor_files_of(image, template=TEMPLATE)


RECIPES: tuple[Recipe, ...] = (
    zoo_recipe(
        "molmo",
        "Molmo: ViT crops pooled 2x2, image tokens in the extra vocabulary, placed before "
        "the prompt text; one image per prompt.",
        config=config,
        tokenizer=TOKENIZER,
        tokenizer_config=TOKENIZER_CONFIG,
        processor_files=processor_files,
    ),
)
