"""Tiny PaliGemma recipe, opened with ``mlx_vlm.load``.

Facts it rests on (mlx-vlm 0.7.10, transformers 5):
- Language model ``gemma`` (64 wide, 2 layers, vocab 1024), vision tower
  ``siglip_vision_model`` on 32-px images with 8-px patches: ``image_seq_length`` 16.
- The language model multiplies embeddings by sqrt(hidden) and ties its output head to
  them: the seeded embeddings are shrunk by that factor (``fix_weights``).
- Gemma-style SentencePiece tokenizer (``<pad> <eos> <bos> <unk>`` first) plus ``<image>``,
  without a BOS post-processor: the processor writes ``<image>``x16 ``<bos>`` prompt ``\\n``.
- No chat template: mlx-vlm renders a single user turn as "<image> text".
- PaliGemma takes one image per prompt (mlx-vlm lists it as single-image), and its prefix
  attends both ways: mlx-vlm prefills the whole prompt in one pass
  (``chunked_prefill_policy`` returns False).
"""

from __future__ import annotations

import math

from ..archs import LM_SHAPES, VISION_SHAPES
from ..recipe import Recipe, TinyArch, Weights
from ..tokenizer import TokenizerSpec

IMAGE_SIZE, PATCH = 32, 8
SEQ_LEN = (IMAGE_SIZE // PATCH) ** 2

TOKENIZER = TokenizerSpec("spm", None, False, ("<pad>", "<eos>", "<bos>", "<unk>"),
                          ("<image>",), ())

TOKENIZER_CONFIG = {
    "clean_up_tokenization_spaces": False,
    "tokenizer_class": "PreTrainedTokenizerFast",
    "add_bos_token": False,
    "add_eos_token": False,
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "model_max_length": 1000000,
    "padding_side": "left",
}


def config(preset: str, ids: dict[str, int]) -> dict:
    s, v = LM_SHAPES[preset], VISION_SHAPES[preset]
    text = {
        "model_type": "gemma",
        "hidden_size": s["hidden"],
        "intermediate_size": s["inter"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "head_dim": s["head_dim"],
        "num_image_tokens": SEQ_LEN,
        "vocab_size": s["vocab"],
    }
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": v["width"],
        "intermediate_size": v["inter"],
        "num_hidden_layers": v["depth"],
        "num_attention_heads": v["heads"],
        "num_image_tokens": SEQ_LEN,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
        "projection_dim": s["hidden"],
    }
    return {
        "architectures": ["PaliGemmaForConditionalGeneration"],
        "model_type": "paligemma",
        "image_token_index": ids["<image>"],
        "bos_token_id": ids["<bos>"],
        "eos_token_id": ids["<eos>"],
        "pad_token_id": ids["<pad>"],
        "hidden_size": s["hidden"],
        "projection_dim": s["hidden"],
        "vocab_size": s["vocab"],
        "text_config": text,
        "vision_config": vision,
    }


def processor_files(preset: str, config: dict) -> dict[str, dict]:
    image = {
        "do_convert_rgb": None,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor",
        "image_seq_length": SEQ_LEN,
        "processor_class": "PaliGemmaProcessor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    }
    processor = {"processor_class": "PaliGemmaProcessor", "image_seq_length": SEQ_LEN}
    return {"preprocessor_config.json": image, "processor_config.json": processor}


def fix_weights(weights: Weights, config: dict) -> Weights:
    """Gemma scales embeddings by sqrt(hidden); the tied head reads them unscaled."""
    name = "language_model.model.embed_tokens.weight"
    return {**weights, name: weights[name] / math.sqrt(weights[name].shape[1])}


RECIPES = (
    Recipe(
        arch=TinyArch(name="paligemma", is_vision=True, supports_video=False,
                      loader="mlx_vlm", family="paligemma",
                      notes="PaliGemma: Gemma + SigLIP (32 px, patch 8), 16 image tokens, "
                      "one image; the prompt is prefilled in one bidirectional pass."),
        config=config,
        tokenizer=TOKENIZER,
        tokenizer_config=TOKENIZER_CONFIG,
        processor_files=processor_files,
        fix_weights=fix_weights,
        presets=("tiny",),
    ),
)
