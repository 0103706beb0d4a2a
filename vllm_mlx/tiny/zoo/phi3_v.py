"""Tiny Phi-3-vision (microsoft/Phi-3.5-vision-instruct layout) recipe, opened with
``mlx_vlm.load``.

Facts this rests on (mlx-vlm 0.7.10, transformers 5):
- transformers has no ``phi3_v`` config class; the config is flat, like the real one
  (``embd_layer``, ``img_processor``, su-scaled RoPE factors of head_dim / 2 entries).
- mlx-vlm's vision module ignores every config key: ``VisionModel`` builds a CLIP ViT-L/14
  at 336 px from a class constant (24 layers, 1024 wide, ~303M parameters), with 336, 144
  tokens per crop and 12 per row written into its merge code, and a projection to the
  language model's width. Only the language model can be tiny (64 wide, 2 layers): the
  folder holds ~1.2 GB of float32 tower weights and an image costs two full ViT-L passes
  (the global view and one crop), so this architecture is *not* cheap.
- The processor (mlx-vlm's ``Phi3VProcessor``) reads ``num_crops`` (1 here: one 336-px
  crop plus the global view, 313 placeholders per image) from ``preprocessor_config.json``;
  it splits the prompt at ``<|image_N|>`` and writes N's placeholders as the id ``-N``.
- SentencePiece-like tokenizer with ``<s>`` prepended; the chat template is the real
  string-only one, "<|user|>\\n...<|end|>\\n<|assistant|>\\n"; mlx-vlm formats the message
  text with ``<|image_N|>`` markers (``MessageFormat.NUMBERED_IMAGE_TOKENS``).
"""

from __future__ import annotations

from ..archs import LM_SHAPES
from ..recipe import CLIP_MEAN, CLIP_STD, Recipe, processor_files_of, tokenizer_config_of
from ..tokenizer import TokenizerSpec
from .common import zoo_recipe

SPECIALS = ("<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>")
TOKENIZER = TokenizerSpec("spm", None, False, ("<unk>", "<s>", "</s>"), SPECIALS, (), "<s>")

# microsoft/Phi-3.5-vision-instruct's template (string content).
TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}"
    "{{- '<|assistant|>\n' -}}{% endif %}"
)

TOKENIZER_CONFIG = tokenizer_config_of(
    TEMPLATE, add_bos_token=True, add_eos_token=False, bos_token="<s>",
    eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<unk>",
    model_max_length=131072, padding_side="right")


def config(preset: str, ids: dict[str, int]) -> dict:
    s = LM_SHAPES[preset]
    heads = s["hidden"] // s["head_dim"]
    half = s["head_dim"] // 2
    return {
        "architectures": ["Phi3VForCausalLM"],
        "model_type": "phi3_v",
        "hidden_size": s["hidden"],
        "intermediate_size": s["inter"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "rope_scaling": {
            "type": "su",
            "short_factor": [1.0 + 0.05 * i for i in range(half)],
            "long_factor": [1.0 + 0.5 * i for i in range(half)],
        },
        "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096,
        "vocab_size": s["vocab"],
        "bos_token_id": ids["<s>"],
        "eos_token_id": [ids["</s>"], ids["<|endoftext|>"], ids["<|end|>"]],
        "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": False,
        "embd_layer": {
            "embedding_cls": "image",
            "hd_transform_order": "sub_glb",
            "projection_cls": "mlp",
            "use_hd_transform": True,
            "with_learnable_separator": True,
        },
        "img_processor": {
            "image_dim_out": 1024,
            "model_name": "openai/clip-vit-large-patch14-336",
            "name": "clip_vision_model",
            "num_img_tokens": 144,
        },
    }


def processor_files(preset: str, config: dict) -> dict[str, dict]:
    image = {
        "image_processor_type": "Phi3VImageProcessor",
        "processor_class": "Phi3VProcessor",
        "num_crops": 1,
        "num_img_tokens": 144,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "do_convert_rgb": True,
    }
    return processor_files_of(image, template=TEMPLATE)


RECIPES: tuple[Recipe, ...] = (
    zoo_recipe(
        "phi3_v",
        "Phi-3.5-vision: tiny language model, full-size CLIP ViT-L/14-336 tower (mlx-vlm "
        "hard-codes it; ~1.2 GB float32); image placeholders are negative ids.",
        config=config,
        tokenizer=TOKENIZER,
        tokenizer_config=TOKENIZER_CONFIG,
        processor_files=processor_files,
    ),
)
