"""The text families of ``vllm_mlx.tiny.zoo.text`` and quantized copies: each builds, its
config passes transformers' validation, loads with mlx-lm (every weight) and generates,
rebuilds byte-identically, and is detected as a text model; ``quantize`` goes through the
libraries' convert paths and ``tiny:ARCH[:PRESET]:qN`` references resolve to them."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

pytest.importorskip("mlx_lm")

from tests.tiny.rebuild import assert_same_files, rebuilt_twice  # noqa: E402
from vllm_mlx import tiny  # noqa: E402
from vllm_mlx.engine.detect import ModelKind, detect_model_kind  # noqa: E402
from vllm_mlx.tiny.quantize import parse_reference  # noqa: E402

NEW_TEXT_ARCHS = ["gemma3_text", "qwen3_moe", "gpt_oss", "qwen3_next", "lfm2"]
# A hybrid family must have a layer of each kind (mlx-lm's cache types per layer).
CACHE_KINDS = {
    "gemma3_text": {"KVCache", "RotatingKVCache"},
    "gpt_oss": {"KVCache", "RotatingKVCache"},
    "qwen3_next": {"KVCache", "ArraysCache"},
    "lfm2": {"KVCache", "ArraysCache"},
    "qwen3_moe": {"KVCache"},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("zoo_text")
    return {a: tiny.build_tiny_model(root / a, a) for a in NEW_TEXT_ARCHS}


@pytest.mark.parametrize("arch", NEW_TEXT_ARCHS)
def test_builds_loads_and_generates(arch, built):
    import mlx_lm
    from transformers import AutoConfig

    info = tiny.ARCHITECTURES[arch]
    assert info.loader == "mlx_lm" and not info.is_vision
    folder = built[arch]
    config = json.loads((folder / "config.json").read_text())
    assert AutoConfig.from_pretrained(folder).model_type == config["model_type"]
    model, tokenizer = mlx_lm.load(str(folder))  # strict: every weight present
    from mlx_lm.models.cache import make_prompt_cache

    assert {type(c).__name__ for c in make_prompt_cache(model)} == CACHE_KINDS[arch]
    assert len(tokenizer) == config["vocab_size"]
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Tell me a story."}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "Be brief." in prompt and "Tell me a story." in prompt
    tokens = [r.token for r in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=10)]
    assert len(set(tokens)) > 2  # not a degenerate repeat of one token


@pytest.mark.parametrize("arch", NEW_TEXT_ARCHS)
def test_detected_as_text(arch, built):
    config = json.loads((built[arch] / "config.json").read_text())
    assert detect_model_kind(config, f"tiny:{arch}").kind is ModelKind.TEXT


@pytest.mark.parametrize("arch", NEW_TEXT_ARCHS)
def test_rebuild_is_byte_identical(arch, built, tmp_path):
    assert_same_files(built[arch], tiny.build_tiny_model(tmp_path / arch, arch))


@pytest.mark.parametrize("arch", ["gpt_oss", "lfm2", "qwen3_moe"])
def test_templates_render_tools(arch, built):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built[arch])
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    call = {"type": "function", "function": {"name": "get_weather",
                                             "arguments": {"city": "Paris"}}}
    messages = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "content": "sunny"}]
    text = tokenizer.apply_chat_template(messages, tools=[tool], add_generation_prompt=True,
                                         tokenize=False)
    for needle in ("get_weather", "Paris", "sunny"):
        assert needle in text


@pytest.mark.parametrize(("arch", "bits"), [("qwen3", 4), ("llama", 8), ("lfm2", 4)])
def test_quantized_text_copy(arch, bits, tmp_path):
    import mlx_lm

    a = rebuilt_twice(tmp_path, arch, quantize=bits)
    manifest = json.loads((a / "tiny_model.json").read_text())
    assert manifest["quantize"] == bits and manifest["arch"] == arch
    config = json.loads((a / "config.json").read_text())
    assert config["quantization"]["bits"] == bits
    model, tokenizer = mlx_lm.load(str(a))
    assert list(mlx_lm.stream_generate(model, tokenizer, "Hello", max_tokens=3))


def test_quantized_vision_copy(tmp_path):
    import mlx_vlm

    folder = tiny.build_tiny_model(tmp_path / "vl", "qwen2_vl", quantize=4)
    assert json.loads((folder / "config.json").read_text())["quantization"]["bits"] == 4
    assert json.loads((folder / "tiny_model.json").read_text())["quantize"] == 4
    assert (folder / "preprocessor_config.json").is_file()
    mlx_vlm.load(str(folder))


def test_quantize_choices(tmp_path):
    with pytest.raises(ValueError, match="valid: 4, 8"):
        tiny.build_tiny_model(tmp_path / "x", "qwen3", quantize=3)
    with pytest.raises(ValueError, match="valid: 4, 8"):
        tiny.ensure_tiny_model("qwen3", cache_dir=tmp_path, quantize=2)
    assert not list(tmp_path.iterdir())


def test_quantized_cache_names_differ(tmp_path):
    plain = tiny.ensure_tiny_model("qwen3", cache_dir=tmp_path)
    q4 = tiny.ensure_tiny_model("qwen3", cache_dir=tmp_path, quantize=4)
    assert plain != q4 and "-q4-" in q4.name
    assert tiny.ensure_tiny_model("qwen3", cache_dir=tmp_path, quantize=4) == q4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([plain.name, q4.name])


@pytest.mark.parametrize(("spec", "parsed"), [
    ("qwen3", ("qwen3", "tiny", None)),
    ("qwen3:small", ("qwen3", "small", None)),
    ("qwen3:q4", ("qwen3", "tiny", 4)),
    ("qwen3:small:q8", ("qwen3", "small", 8)),
])
def test_parse_reference(spec, parsed):
    assert parse_reference(spec) == parsed


def test_reference_with_bad_bits_names_the_choices(tmp_path):
    from vllm_mlx.engine.errors import ModelLoadError
    from vllm_mlx.engine.loader import LoadOptions, resolve_model_path

    options = LoadOptions(tiny_cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="valid: 4, 8"):
        resolve_model_path("tiny:qwen3:q3", options)
    with pytest.raises(ModelLoadError, match="unknown architecture"):
        resolve_model_path("tiny:nope:q4", options)
    path, random = resolve_model_path("tiny:qwen3:q8", options)
    assert random and json.loads((path / "tiny_model.json").read_text())["quantize"] == 8


def test_cli_quantize(tmp_path, capsys):
    assert tiny.main([str(tmp_path / "m"), "--arch", "qwen3", "--quantize", "8"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")  # converter prints hidden
    with pytest.raises(SystemExit):
        tiny.main([str(tmp_path / "n"), "--arch", "qwen3", "--quantize", "3"])
