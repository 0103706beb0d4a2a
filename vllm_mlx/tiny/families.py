"""Per-family tokenizer specs, tokenizer_config.json and processor files.

Contract: ``tokenizer_spec(family)`` gives the family's special tokens (real names, real
roles); ``tokenizer_config(family, ids)`` the tokenizer_config.json dict (chat template
included); ``processor_files(arch, family, preset)`` the extra JSON files
(preprocessor_config.json, video_preprocessor_config.json, processor_config.json,
chat_template.json) mapped by file name.  The ``tiny`` preset keeps an image at <= 16
vision tokens and 8 video frames at <= 16 tokens (>= 1 token per 2 frames; clips loaded from
files are sampled to <= 8 frames); ``small`` uses the real families' defaults.
"""

from __future__ import annotations

from . import templates
from .recipe import (
    CLIP_MEAN,
    CLIP_STD,
    HALF,
    image_processor,
    processor_files_of,
    tokenizer_config_of,
)
from .tokenizer import LLAMA3_SPLIT, QWEN_SPLIT, TokenizerSpec

_QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
_QWEN_PLAIN = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
_QWEN3_PLAIN = _QWEN_PLAIN + ("<tool_response>", "</tool_response>", "<think>", "</think>")
_LLAMA_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
)
_GEMMA_LEADING = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[multimodal]")
_GEMMA_SPECIALS = (
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
)

_SPECS = {
    "qwen_vl": TokenizerSpec("bytelevel", QWEN_SPLIT, True, (), _QWEN_SPECIALS, _QWEN_PLAIN),
    "qwen3_vl": TokenizerSpec("bytelevel", QWEN_SPLIT, True, (), _QWEN_SPECIALS, _QWEN3_PLAIN),
    "qwen3": TokenizerSpec("bytelevel", QWEN_SPLIT, True, (), _QWEN_SPECIALS, _QWEN3_PLAIN),
    "llama3": TokenizerSpec(
        "bytelevel", LLAMA3_SPLIT, False, (), _LLAMA_SPECIALS, (), "<|begin_of_text|>"
    ),
    "gemma3": TokenizerSpec("spm", None, False, _GEMMA_LEADING, _GEMMA_SPECIALS, (), "<bos>"),
}

_TEMPLATES = {
    "qwen_vl": templates.QWEN2_VL,
    "qwen3_vl": templates.QWEN3_VL,
    "qwen3": templates.QWEN3,
    "llama3": templates.LLAMA3,
    "gemma3": templates.GEMMA3,
}


def tokenizer_spec(family: str) -> TokenizerSpec:
    return _SPECS[family]


def chat_template(family: str) -> str:
    return _TEMPLATES[family]


def tokenizer_config(family: str) -> dict:
    """tokenizer_config.json for ``family`` (the tokenizer itself is tokenizer.json)."""
    template = _TEMPLATES[family]
    if family in ("qwen_vl", "qwen3_vl", "qwen3"):
        return tokenizer_config_of(
            template,
            "Qwen2Tokenizer",
            add_prefix_space=False,
            bos_token=None,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            unk_token=None,
            errors="replace",
            split_special_tokens=False,
            model_max_length=131072,
            additional_special_tokens=list(_QWEN_SPECIALS[1:]),
        )
    if family == "llama3":
        return tokenizer_config_of(
            template,
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            model_input_names=["input_ids", "attention_mask"],
            model_max_length=131072,
        )
    image_tokens = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                    "image_token": "<image_soft_token>"}
    return tokenizer_config_of(  # gemma3
        template,
        add_bos_token=True,
        add_eos_token=False,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        **image_tokens,
        extra_special_tokens=dict(image_tokens),
        model_max_length=131072,
        spaces_between_special_tokens=False,
    )


def _qwen_vl_files(preset: str, proc_class: str) -> tuple[dict, dict]:
    tiny = preset == "tiny"
    image = {
        "min_pixels": 56 * 56 if tiny else 3136,
        "max_pixels": 112 * 112 if tiny else 12845056,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": proc_class,
    }
    video = {
        **image,
        "min_pixels": 2 * 28 * 28 if tiny else 128 * 28 * 28,
        "max_pixels": 8 * 56 * 56 if tiny else 768 * 28 * 28,
        "fps": 2.0,
        "min_frames": 2 if tiny else 4,
        "max_frames": 8 if tiny else 768,
        "video_processor_type": "Qwen2VLVideoProcessor",
    }
    video.pop("image_processor_type")
    return image, video


def _qwen3_vl_files(preset: str) -> tuple[dict, dict]:
    tiny = preset == "tiny"
    norm = {"image_mean": HALF, "image_std": HALF}
    patch = {"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2}
    image = {
        "size": {
            "longest_edge": 128 * 128 if tiny else 16777216,
            "shortest_edge": 64 * 64 if tiny else 65536,
        },
        **patch,
        **norm,
        "image_processor_type": "Qwen2VLImageProcessorFast",
        "processor_class": "Qwen3VLProcessor",
    }
    video = {
        "size": {
            "longest_edge": 8 * 64 * 64 if tiny else 25165824,
            "shortest_edge": 2 * 32 * 32 if tiny else 4096,
        },
        **patch,
        **norm,
        "fps": 2.0,
        "min_frames": 2 if tiny else 4,
        "max_frames": 8 if tiny else 768,
        "do_sample_frames": True,
        "video_processor_type": "Qwen3VLVideoProcessor",
        "processor_class": "Qwen3VLProcessor",
    }
    return image, video


def _gemma3_files(config: dict) -> dict[str, dict]:
    seq = int(config["mm_tokens_per_image"])
    side = int(config["vision_config"]["image_size"])
    image = image_processor(
        "Gemma3ImageProcessor", "Gemma3Processor", mean=HALF, std=HALF,
        do_convert_rgb=None, do_pan_and_scan=None, image_seq_length=seq,
        pan_and_scan_max_num_crops=None, pan_and_scan_min_crop_size=None,
        pan_and_scan_min_ratio_to_activate=None,
        resample=2, size={"height": side, "width": side},
    )
    processor = {"image_seq_length": seq, "processor_class": "Gemma3Processor"}
    return processor_files_of(image, processor=processor, template=_TEMPLATES["gemma3"])


def processor_files(arch: str, family: str, preset: str, config: dict) -> dict[str, dict]:
    """Extra JSON files (by name) that the family's processor reads."""
    if family == "gemma3":
        return _gemma3_files(config)
    if family == "qwen_vl":
        proc = "Qwen2VLProcessor" if arch == "qwen2_vl" else "Qwen2_5_VLProcessor"
        image, video = _qwen_vl_files(preset, proc)
    elif family == "qwen3_vl":
        image, video = _qwen3_vl_files(preset)
    else:
        return {}
    return processor_files_of(image, video=video, template=_TEMPLATES[family])
