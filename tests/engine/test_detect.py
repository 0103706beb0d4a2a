"""Text vs vision-language detection: config first, then name, then forced choice."""

import pytest

from vllm_mlx.engine.detect import (
    ModelKind,
    context_length,
    detect_from_name,
    detect_model_kind,
)

VISION_NAMES = [
    "mlx-community/Qwen3-VL-4B-Instruct-3bit",
    "mlx-community/Qwen2.5-VL-7B-Instruct-4bit",
    "HuggingFaceTB/SmolVLM-256M-Instruct",
    "mlx-community/SmolVLM2-2.2B-Instruct-mlx",
    "mlx-community/Llama-3.2-11B-Vision-Instruct-4bit",
    "microsoft/Phi-4-multimodal-instruct",
    "openbmb/MiniCPM-V-2_6",
    "mlx-community/Qwen3.6-35B-A3B-4bit",
    "mlx-community/llava-1.5-7b-4bit",
    "mlx-community/paligemma2-3b-mix-448-8bit",
    "mlx-community/pixtral-12b-4bit",
    "mlx-community/gemma-3-4b-it-4bit",
    "mlx-community/Molmo-7B-D-0924-4bit",
    "deepseek-ai/deepseek-vl2-tiny",
    "mlx-community/Idefics3-8B-Llama3-4bit",
    "some-org/my-mllm-model",
]
TEXT_NAMES = [
    "mlx-community/Qwen3-0.6B-4bit",
    "mlx-community/Llama-3.2-3B-Instruct-4bit",
    "mlx-community/gemma-3-1b-it-4bit",
    "mlx-community/Mistral-7B-Instruct-v0.3-4bit",
    "mlx-community/Phi-4-mini-instruct-4bit",
    "mlx-community/DeepSeek-R1-Distill-Qwen-7B",
    "mlx-community/Qwen2.5-Coder-7B-Instruct",
]


@pytest.mark.parametrize("name", VISION_NAMES)
def test_vision_names_detected_without_config(name):
    assert detect_model_kind(None, name).kind is ModelKind.VISION


@pytest.mark.parametrize("name", TEXT_NAMES)
def test_text_names_not_mistaken_for_vision(name):
    assert detect_from_name(name) is None
    assert detect_model_kind(None, name).kind is ModelKind.TEXT


@pytest.mark.parametrize("config", [
    {"model_type": "qwen2_vl", "vision_config": {"depth": 2}},
    {"model_type": "custom", "image_token_id": 5},
    {"model_type": "something_new", "architectures": ["SomethingForConditionalGeneration"]},
    {"model_type": "smolvlm"},
    {"model_type": "mllama"},
    {"model_type": "phi4mm", "audio_config": {"x": 1}},
])
def test_config_decides_vision(config):
    assert detect_model_kind(config, "plain-name").kind is ModelKind.VISION


def test_config_beats_name():
    text_config = {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]}
    assert detect_model_kind(text_config, "my-VL-finetune").kind is ModelKind.TEXT
    vision_config = {"model_type": "qwen2_vl", "vision_config": {"depth": 1}}
    assert detect_model_kind(vision_config, "qwen3-0.6b").kind is ModelKind.VISION


def test_silent_config_falls_back_to_name():
    assert detect_model_kind({}, "org/Some-Vision-Model").kind is ModelKind.VISION
    assert detect_model_kind({}, "org/Some-Model").kind is ModelKind.TEXT


def test_force_overrides_everything():
    vision = {"model_type": "qwen2_vl", "vision_config": {"depth": 1}}
    assert detect_model_kind(vision, "x", force=ModelKind.TEXT).kind is ModelKind.TEXT
    assert detect_model_kind({"model_type": "qwen3"}, "x",
                             force=ModelKind.VISION).kind is ModelKind.VISION


def test_reason_is_given():
    detection = detect_model_kind({"model_type": "qwen2_vl", "vision_config": {"a": 1}}, "x")
    assert "vision_config" in detection.reason


def test_context_length_reads_nested_text_config():
    assert context_length({"max_position_embeddings": 4096}) == 4096
    assert context_length({"text_config": {"max_position_embeddings": 128000}}) == 128000
    assert context_length({}) is None
