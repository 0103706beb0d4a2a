# ruff: noqa: E501
"""Tiny Idefics3 and SmolVLM recipes, opened with ``mlx_vlm.load``.

Facts these rest on (mlx-vlm 0.7.10, transformers 5):
- Language model ``llama`` (64 wide, 2 layers, vocab 1024); vision tower
  ``idefics3_vision`` / ``smolvlm_vision`` on 32-px crops with 8-px patches; the connector's
  pixel shuffle (``scale_factor`` 2) leaves ``image_seq_len`` 4 tokens per crop.
- ``Idefics3ImageProcessor`` / ``SmolVLMImageProcessor`` with ``max_image_size`` 32 and
  ``size`` 64, splitting on: an image is up to 2x2 crops plus a global one, each written as
  ``<fake_token_around_image>`` (``<row_i_col_j>`` | ``<global-img>``) ``<image>``x4.
- Byte-level BPE tokenizer with the families' specials (``<end_of_utterance>`` ends a turn);
  the templates write "User:<image>text<end_of_utterance>\\nAssistant:".
"""

from __future__ import annotations

from functools import partial

from ..archs import LM_SHAPES, lm_dims, vision_dims
from ..recipe import HALF, Recipe, image_processor, processor_files_of, tokenizer_config_of
from ..tokenizer import QWEN_SPLIT, TokenizerSpec
from .common import zoo_recipe

CROP, PATCH, SCALE = 32, 8, 2
SEQ_LEN = (CROP // PATCH) ** 2 // SCALE**2
GRID = 2  # size / max_image_size: crops per side at most
_IMAGE_TOKENS = ("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>",
                 *(f"<row_{r}_col_{c}>" for r in range(1, GRID + 1) for c in range(1, GRID + 1)))

_BOS = {"idefics3": "<|begin_of_text|>", "smolvlm": "<|im_start|>"}
_EOS = {"idefics3": "<|end_of_text|>", "smolvlm": "<|im_end|>"}
_SPECIALS = {
    "idefics3": ("<|begin_of_text|>", "<|end_of_text|>", *_IMAGE_TOKENS),
    "smolvlm": ("<|endoftext|>", "<|im_start|>", "<|im_end|>", *_IMAGE_TOKENS),
}
_CLASSES = {
    "idefics3": ("Idefics3ForConditionalGeneration", "Idefics3Processor",
                 "Idefics3ImageProcessor", "idefics3_vision"),
    "smolvlm": ("SmolVLMForConditionalGeneration", "SmolVLMProcessor",
                "SmolVLMImageProcessor", "smolvlm_vision"),
}


def chat_template(arch: str) -> str:
    """HuggingFaceM4's template: role, ':' (': ' before text), parts, end of utterance."""
    return (
        "{{- '" + _BOS[arch] + "' -}}"
        "{%- for message in messages -%}"
        "{{- message['role'] | capitalize -}}"
        "{%- if message['content'] is string -%}{{- ': ' + message['content'] -}}"
        "{%- else -%}"
        "{%- if message['content'][0]['type'] == 'image' -%}{{- ':' -}}{%- else -%}{{- ': ' -}}{%- endif -%}"
        "{%- for line in message['content'] -%}"
        "{%- if line['type'] == 'text' -%}{{- line['text'] -}}{%- elif line['type'] == 'image' -%}{{- '<image>' -}}{%- endif -%}"
        "{%- endfor -%}"
        "{%- endif -%}"
        "{{- '<end_of_utterance>\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
    )


def tokenizer_config(arch: str) -> dict:
    return tokenizer_config_of(
        chat_template(arch), bos_token=_BOS[arch], eos_token=_EOS[arch], pad_token=_EOS[arch],
        unk_token=None, model_max_length=8192,
        additional_special_tokens=["<fake_token_around_image>", "<image>", "<end_of_utterance>"])


def config(arch: str, preset: str, ids: dict[str, int]) -> dict:
    s = LM_SHAPES[preset]
    model_class, _, _, vision_type = _CLASSES[arch]
    text = {
        "model_type": "llama",
        **lm_dims(preset),
        "head_dim": s["head_dim"],
        "rms_norm_eps": 1e-05,
        "rope_theta": 100000.0,
        "max_position_embeddings": 8192,
        "vocab_size": s["vocab"],
        "tie_word_embeddings": False,
    }
    vision = {
        "model_type": vision_type,
        **vision_dims(preset),
        "image_size": CROP,
        "patch_size": PATCH,
        "num_channels": 3,
        "layer_norm_eps": 1e-06,
    }
    return {
        "architectures": [model_class],
        "model_type": arch,
        "image_token_id": ids["<image>"],
        "bos_token_id": ids[_BOS[arch]],
        "eos_token_id": [ids[_EOS[arch]], ids["<end_of_utterance>"]],
        "pad_token_id": ids[_EOS[arch]],
        "scale_factor": SCALE,
        "vocab_size": s["vocab"],
        "tie_word_embeddings": False,
        "text_config": text,
        "vision_config": vision,
    }


def processor_files(arch: str, preset: str, config: dict) -> dict[str, dict]:
    _, processor_class, image_class, _ = _CLASSES[arch]
    image = image_processor(
        image_class, processor_class, mean=HALF, std=HALF, do_convert_rgb=True,
        do_image_splitting=True, do_pad=True, max_image_size={"longest_edge": CROP},
        resample=1, size={"longest_edge": GRID * CROP})
    processor = {"image_seq_len": SEQ_LEN, "processor_class": processor_class}
    return processor_files_of(image, processor=processor, template=chat_template(arch))


def _recipe(arch: str, notes: str) -> Recipe:
    return zoo_recipe(arch, notes, config=partial(config, arch),
                      tokenizer=TokenizerSpec("bytelevel", QWEN_SPLIT, False, (), _SPECIALS[arch]),
                      tokenizer_config=tokenizer_config(arch),
                      processor_files=partial(processor_files, arch))


RECIPES = (
    _recipe("idefics3", "Idefics3: Llama + SigLIP-like tower (32-px crops, patch 8), pixel "
            "shuffle 2: 4 tokens per crop, up to 2x2 crops + a global one."),
    _recipe("smolvlm", "SmolVLM: as Idefics3 with SmolVLM's processor and template."),
)
