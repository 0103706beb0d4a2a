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

from ..archs import LM_SHAPES, lm_dims, vision_dims
from ..recipe import (
    HALF,
    Weights,
    gemma_embeddings,
    image_processor,
    processor_files_of,
    tokenizer_config_of,
)
from ..tokenizer import TokenizerSpec
from .common import zoo_recipe

IMAGE_SIZE, PATCH = 32, 8
SEQ_LEN = (IMAGE_SIZE // PATCH) ** 2

TOKENIZER = TokenizerSpec("spm", None, False, ("<pad>", "<eos>", "<bos>", "<unk>"),
                          ("<image>",), ())

TOKENIZER_CONFIG = tokenizer_config_of(
    None, add_bos_token=False, add_eos_token=False, bos_token="<bos>", eos_token="<eos>",
    pad_token="<pad>", unk_token="<unk>", model_max_length=1000000, padding_side="left")


def config(preset: str, ids: dict[str, int]) -> dict:
    s = LM_SHAPES[preset]
    text = {
        "model_type": "gemma",
        **lm_dims(preset),
        "head_dim": s["head_dim"],
        "num_image_tokens": SEQ_LEN,
        "vocab_size": s["vocab"],
    }
    vision = {
        "model_type": "siglip_vision_model",
        **vision_dims(preset),
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
    image = image_processor(
        "SiglipImageProcessor", "PaliGemmaProcessor", mean=HALF, std=HALF, do_convert_rgb=None,
        image_seq_length=SEQ_LEN, resample=3, size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = {"processor_class": "PaliGemmaProcessor", "image_seq_length": SEQ_LEN}
    return processor_files_of(image, processor=processor)


def fix_weights(weights: Weights, config: dict) -> Weights:
    """Gemma scales embeddings by sqrt(hidden); the tied head reads them unscaled."""
    name = "language_model.model.embed_tokens.weight"
    return {**weights, name: gemma_embeddings(weights, name)}


RECIPES = (
    zoo_recipe("paligemma", "PaliGemma: Gemma + SigLIP (32 px, patch 8), 16 image tokens, "
               "one image; the prompt is prefilled in one bidirectional pass.",
               config=config, tokenizer=TOKENIZER, tokenizer_config=TOKENIZER_CONFIG,
               processor_files=processor_files, fix_weights=fix_weights),
)
