"""``media_placeholder_ids``: per family, the ids are found at load time, and a prompt's
first placeholder comes at or before the first position whose embedding depends on the
image (what a prefix cache may reuse up to)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.engine.test_parity import noise_image
from vllm_mlx.engine import ChatMessage, GenerationRequest, ImagePart, TextPart
from vllm_mlx.engine.inputs import prepare_prompt
from vllm_mlx.engine.loader import load_model
from vllm_mlx.engine.placeholders import ALL_NEGATIVE, media_placeholder_ids

FAST = ["qwen2_vl", "qwen3_vl", "gemma3", "molmo", "deepseek_vl_v2"]


@pytest.fixture(scope="module")
def loaded(tiny_model):
    cache: dict = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = load_model(str(tiny_model(arch)))
        return cache[arch]

    return get


def _specials(loaded_model) -> dict[str, int]:
    manifest = json.loads((loaded_model.path / "tiny_model.json").read_text())
    return manifest["special_token_ids"]


def test_config_named_ids(loaded):
    for arch in ("qwen2_vl", "qwen3_vl"):
        model = loaded(arch)
        ids = media_placeholder_ids(model)
        assert ids is not None
        assert {model.config["image_token_id"], model.config["video_token_id"]} <= ids
    gemma = loaded("gemma3")
    assert gemma.config["image_token_index"] in (media_placeholder_ids(gemma) or ())


def test_molmo_image_tokens_from_the_processor(loaded):
    model = loaded("molmo")
    specials = _specials(model)
    wanted = {specials[t] for t in ("<im_start>", "<im_end>", "<im_patch>", "<im_col>")}
    assert wanted <= (media_placeholder_ids(model) or set())


def test_deepseek_image_token_and_no_foreign_default(loaded):
    model = loaded("deepseek_vl_v2")
    ids = media_placeholder_ids(model) or set()
    assert _specials(model)["<image>"] in ids
    assert 100015 not in ids  # mlx-vlm's config default, not in this vocabulary


def test_text_model_has_none(loaded):
    assert media_placeholder_ids(loaded("qwen3")) == frozenset()


@pytest.mark.slow
def test_phi3_v_marks_negative_ids(loaded):
    assert media_placeholder_ids(loaded("phi3_v")) == frozenset({ALL_NEGATIVE})


@pytest.mark.parametrize("arch", FAST)
def test_first_placeholder_precedes_the_first_image_dependent_embedding(arch, loaded):
    model = loaded(arch)
    ids = media_placeholder_ids(model)
    assert ids is not None

    def embeds(seed: int):
        request = GenerationRequest(messages=(ChatMessage(
            "user", (TextPart("Look:"), ImagePart(noise_image(seed)), TextPart("Describe."))),))
        prompt = prepare_prompt(model, request)
        out = model.model.get_input_embeddings(prompt.input_ids, prompt.pixel_values,
                                               mask=prompt.mask, **prompt.model_kwargs)
        return np.array(prompt.input_ids)[0], np.array(out.inputs_embeds)[0]

    tokens, first = embeds(1)
    same_tokens, second = embeds(2)
    assert np.array_equal(tokens, same_tokens)
    differs = np.flatnonzero(np.abs(first - second).max(axis=-1) > 0)
    marked = np.isin(tokens, list(ids)) | ((tokens < 0) if ALL_NEGATIVE in ids else False)
    assert differs.size and marked.any()
    assert np.flatnonzero(marked)[0] <= differs[0]
    assert marked[differs].all()  # every image-dependent position is a placeholder
