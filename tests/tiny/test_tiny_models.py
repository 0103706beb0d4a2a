"""Acceptance tests of ``vllm_mlx.tiny``: every architecture builds, loads through the real
mlx-vlm / mlx-lm loader with every weight, generates, and rebuilds byte-identically."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("mlx_vlm")
pytest.importorskip("mlx_lm")

import mlx.core as mx  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402
from PIL import Image  # noqa: E402

from tests.tiny.rebuild import assert_same_files  # noqa: E402
from vllm_mlx import tiny  # noqa: E402
from vllm_mlx.tiny import builder  # noqa: E402

VL_ARCHS = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "gemma3"]
TEXT_ARCHS = ["qwen3", "llama"]
MAX_TOKENS = 10


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """arch -> folder, each built once for the module."""
    root = tmp_path_factory.mktemp("tiny")
    return {a: tiny.build_tiny_model(root / a, a) for a in VL_ARCHS + TEXT_ARCHS}


@pytest.fixture(scope="module")
def loaded(built):
    """arch -> (model, processor/tokenizer) through the real loaders."""
    import mlx_lm
    import mlx_vlm

    out = {}
    for arch, path in built.items():
        loader = mlx_vlm if tiny.ARCHITECTURES[arch].is_vision else mlx_lm
        out[arch] = loader.load(str(path))
    return out


def _image(seed: int, size=(96, 128)) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(*size, 3) * 255).astype(np.uint8))


def _frames(n: int = 6) -> np.ndarray:
    """Already-decoded video frames, (T, C, H, W) uint8."""
    return (np.random.RandomState(7).rand(n, 3, 64, 80) * 255).astype(np.uint8)


def _eos_bias(eos_ids) -> dict[int, float]:
    return {int(i): -1e9 for i in eos_ids}


def _vlm_generate(model, processor, *, images=(), video=None, **kw):
    import mlx_vlm
    from mlx_vlm.prompt_utils import apply_chat_template

    extra = {"video": "clip"} if video is not None else {}
    prompt = apply_chat_template(
        processor, model.config, "Describe this.", num_images=len(images), **extra
    )
    eos = processor.tokenizer.stopping_criteria.eos_token_ids
    return mlx_vlm.generate(
        model,
        processor,
        prompt,
        image=list(images) or None,
        video=[video] if video is not None else None,
        max_tokens=MAX_TOKENS,
        temperature=0.0,
        logit_bias=_eos_bias(eos),
        verbose=False,
        **kw,
    )


def test_registry_names_and_flags():
    assert list(tiny.ARCHITECTURES)[:6] == VL_ARCHS + TEXT_ARCHS  # the zoo follows
    assert tiny.PRESETS == ("tiny", "small")
    for name, arch in tiny.ARCHITECTURES.items():
        assert arch.name == name
        assert arch.is_vision == (arch.loader == "mlx_vlm")
        assert arch.supports_video <= arch.is_vision
    for name in VL_ARCHS + TEXT_ARCHS:
        assert tiny.ARCHITECTURES[name].is_vision == (name in VL_ARCHS)
        assert tiny.ARCHITECTURES[name].supports_video == (
            name in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"))


@pytest.mark.parametrize(
    "kwargs, valid",
    [
        ({"arch": "nope"}, "qwen2_vl, qwen2_5_vl, qwen3_vl, gemma3, qwen3, llama, "),
        ({"arch": "qwen3", "preset": "huge"}, "tiny, small"),
        ({"arch": "qwen3", "dtype": "int8"}, "float32, bfloat16, float16"),
    ],
)
def test_bad_choices_raise_value_error(tmp_path, kwargs, valid):
    with pytest.raises(ValueError, match=valid):
        tiny.build_tiny_model(tmp_path / "x", **kwargs)
    with pytest.raises(ValueError, match=valid):
        tiny.ensure_tiny_model(cache_dir=tmp_path, **kwargs)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("arch", VL_ARCHS + TEXT_ARCHS)
def test_folder_validates_with_transformers(built, arch):
    import transformers

    path = built[arch]
    config = json.loads((path / "config.json").read_text())
    transformers.AutoConfig.from_pretrained(path)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    vocab = config.get("vocab_size") or config["text_config"]["vocab_size"]
    assert len(tok) == vocab
    assert tok.chat_template
    manifest = json.loads((path / "tiny_model.json").read_text())
    assert manifest["arch"] == arch and manifest["preset"] == "tiny"
    assert 10_000 < manifest["num_parameters"] < 5_000_000


@pytest.mark.parametrize("arch", VL_ARCHS + TEXT_ARCHS)
def test_every_saved_weight_is_loaded(built, loaded, arch):
    saved = mx.load(str(built[arch] / "model.safetensors"))
    params = dict(tree_flatten(loaded[arch][0].parameters()))
    assert set(params) == set(saved)
    for name, value in saved.items():
        assert params[name].dtype == mx.float32
        assert mx.array_equal(params[name], value).item(), name


@pytest.mark.parametrize("arch", TEXT_ARCHS)
def test_text_generate(loaded, arch):
    import mlx_lm
    from mlx_lm.sample_utils import make_logits_processors

    model, tok = loaded[arch]
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hello there"}], add_generation_prompt=True, tokenize=False
    )
    procs = make_logits_processors(logit_bias=_eos_bias(tok.eos_token_ids))
    steps = list(
        mlx_lm.stream_generate(model, tok, prompt, max_tokens=MAX_TOKENS, logits_processors=procs)
    )
    assert len(steps) == MAX_TOKENS
    assert "".join(s.text for s in steps)
    assert len({s.token for s in steps}) > 2  # not a degenerate repeat of one token


@pytest.mark.parametrize("arch", VL_ARCHS)
def test_vlm_images_expand_and_generate(loaded, arch):
    model, processor = loaded[arch]
    text = _vlm_generate(model, processor)
    one = _vlm_generate(model, processor, images=[_image(0)])
    two = _vlm_generate(model, processor, images=[_image(0), _image(1, (200, 150))])
    for r in (text, one, two):
        assert r.generation_tokens == MAX_TOKENS and r.text
    assert text.prompt_tokens + 4 < one.prompt_tokens < two.prompt_tokens
    other = _vlm_generate(model, processor, images=[_image(5)])
    assert other.prompt_tokens == one.prompt_tokens
    assert other.text != one.text  # the image reaches the language model


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_vlm_native_video(loaded, arch):
    model, processor = loaded[arch]
    text = _vlm_generate(model, processor)
    video = _vlm_generate(model, processor, video=_frames())
    assert video.generation_tokens == MAX_TOKENS
    assert video.prompt_tokens > text.prompt_tokens + 4


def test_gemma3_has_no_video():
    arch = tiny.ARCHITECTURES["gemma3"]
    assert arch.is_vision and not arch.supports_video


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl"])
def test_qwen_chat_template_markers(loaded, arch):
    from mlx_vlm.prompt_utils import apply_chat_template

    model, processor = loaded[arch]
    two = apply_chat_template(processor, model.config, "Hi", num_images=2)
    assert two.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    vid = apply_chat_template(processor, model.config, "Hi", video="clip")
    assert vid.count("<|vision_start|><|video_pad|><|vision_end|>") == 1


def test_gemma3_image_tokens(built, loaded):
    model, processor = loaded["gemma3"]
    config = json.loads((built["gemma3"] / "config.json").read_text())
    seq = config["mm_tokens_per_image"]
    assert json.loads((built["gemma3"] / "processor_config.json").read_text()) == {
        "image_seq_length": seq,
        "processor_class": "Gemma3Processor",
    }
    ids = processor(text=["<start_of_image>"], images=[_image(0)])["input_ids"]
    assert int((np.array(ids) == config["image_token_index"]).sum()) == seq


def test_rebuild_is_byte_identical(tmp_path, built):
    assert_same_files(built["qwen2_vl"], tiny.build_tiny_model(tmp_path / "again", "qwen2_vl"))
    other = tiny.build_tiny_model(tmp_path / "seed1", "qwen2_vl", seed=1)
    a = (other / "model.safetensors").read_bytes()
    assert a != (built["qwen2_vl"] / "model.safetensors").read_bytes()


def test_bfloat16_dtype_loads(tmp_path):
    import mlx_lm

    path = tiny.build_tiny_model(tmp_path / "bf16", "llama", dtype="bfloat16")
    model, _ = mlx_lm.load(str(path))
    assert {v.dtype for _, v in tree_flatten(model.parameters())} == {mx.bfloat16}


def test_ensure_builds_once(tmp_path, monkeypatch):
    first = tiny.ensure_tiny_model("qwen3", cache_dir=tmp_path)
    assert first.parent == tmp_path
    for part in ("qwen3", "tiny", "float32", "seed0", f"v{tiny.BUILDER_VERSION}"):
        assert part in first.name
    monkeypatch.setattr(builder, "build_tiny_model", _fail)
    assert tiny.ensure_tiny_model("qwen3", cache_dir=tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp dirs left


def _fail(*args, **kwargs):
    raise AssertionError("rebuilt a cached model")


def test_ensure_tolerates_losing_the_race(tmp_path, monkeypatch):
    real_build = builder.build_tiny_model

    def build_and_lose(out, arch, preset="tiny", **kw):
        real_build(out, arch, preset, **kw)
        monkeypatch.setattr(builder, "build_tiny_model", real_build)
        return tiny.ensure_tiny_model(arch, preset, cache_dir=tmp_path, **kw)  # the winner

    monkeypatch.setattr(builder, "build_tiny_model", build_and_lose)
    path = tiny.ensure_tiny_model("llama", cache_dir=tmp_path)
    assert (path / "tiny_model.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_ensure_respects_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = tiny.ensure_tiny_model("llama")
    assert path.parent == tmp_path / "vllm-mlx" / "tiny-models"


def test_cli_refuses_a_folder_that_holds_files(tmp_path, capsys):
    """Another model's files left beside the new one would be loaded with it."""
    from vllm_mlx import cli

    out = tmp_path / "used"
    out.mkdir()
    (out / "chat_template.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        tiny.main([str(out), "--arch", "llama"])
    assert exit_info.value.code == 2 and "is not empty" in capsys.readouterr().err
    assert cli.main(["tiny-model", "--arch", "llama", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["chat_template.json"]


def test_cli_main(tmp_path, capsys):
    assert tiny.main([str(tmp_path / "cli"), "--arch", "llama", "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli")
    assert json.loads((tmp_path / "cli" / "tiny_model.json").read_text())["seed"] == 3
    with pytest.raises(SystemExit):
        tiny.main([str(tmp_path / "bad"), "--arch", "nope"])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen3", "qwen2_vl"])
def test_small_preset_parameter_count(tmp_path, arch):
    path = tiny.build_tiny_model(tmp_path / arch, arch, "small")
    manifest = json.loads((path / "tiny_model.json").read_text())
    saved = mx.load(str(path / "model.safetensors"))
    assert manifest["num_parameters"] == sum(v.size for v in saved.values())
    assert 0.4e9 <= manifest["num_parameters"] <= 0.7e9
