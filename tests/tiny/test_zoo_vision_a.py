"""The tiny LLaVA, LLaVA-NeXT, PaliGemma, Idefics3, SmolVLM, Pixtral and Mistral 3 folders:
each builds, passes transformers' config check, loads with mlx-vlm's own processor, is
detected as a vision model, and rebuilds byte for byte."""

from __future__ import annotations

import json

import pytest

from tests.tiny.rebuild import rebuilt_twice
from vllm_mlx.engine.detect import ModelKind, detect_model_kind
from vllm_mlx.tiny import ARCHITECTURES

PROCESSORS = {
    "llava": "LlavaProcessor",
    "llava_next": "LlavaNextProcessor",
    "paligemma": "PaliGemmaProcessor",
    "idefics3": "Idefics3Processor",
    "smolvlm": "SmolVLMProcessor",
    "pixtral": "PixtralProcessor",
    "mistral3": "Mistral3Processor",
}
ARCHS = tuple(PROCESSORS)


@pytest.mark.parametrize("arch", ARCHS)
def test_registered_as_a_tiny_vision_arch(arch):
    info = ARCHITECTURES[arch]
    assert info.is_vision and info.loader == "mlx_vlm" and not info.supports_video


@pytest.mark.parametrize("arch", ARCHS)
def test_config_is_accepted_and_detected_as_vision(arch, tiny_model):
    from transformers import AutoConfig

    folder = tiny_model(arch)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == arch
    assert config["text_config"]["hidden_size"] == 64
    assert config["text_config"]["num_hidden_layers"] == 2
    assert config["text_config"]["vocab_size"] == 1024
    AutoConfig.from_pretrained(str(folder))  # raises on a field transformers 5 rejects
    assert detect_model_kind(config, folder.name).kind is ModelKind.VISION


@pytest.mark.parametrize("arch", ARCHS)
def test_loads_with_the_family_processor(arch, tiny_model):
    import mlx_vlm

    folder = tiny_model(arch)
    model, processor = mlx_vlm.load(str(folder))
    assert type(processor).__name__ == PROCESSORS[arch]
    # PaliGemma's processor appends its 1024 <locNNNN> and 128 <segNNN> tokens.
    assert len(processor.tokenizer) == 1024 + (1152 if arch == "paligemma" else 0)
    manifest = json.loads((folder / "tiny_model.json").read_text())
    assert manifest["num_parameters"] < 500_000


@pytest.mark.parametrize("arch", ARCHS)
def test_rebuild_is_byte_identical(arch, tmp_path):
    folder = rebuilt_twice(tmp_path, arch)
    assert (folder / "preprocessor_config.json").is_file()
    assert (folder / "processor_config.json").is_file()
