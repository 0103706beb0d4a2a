"""Vision models stream a token's text as soon as it is complete, and end with the text
mlx-vlm's own detokenizer gives (for tokens that form valid UTF-8)."""

from __future__ import annotations

import random

import pytest
from mlx_vlm.tokenizer_utils import make_streaming_detokenizer

from vllm_mlx.engine.loader import load_model
from vllm_mlx.engine.tokens import detokenizer_prototype, new_detokenizer


def clean_ids(tokenizer) -> list[int]:
    """Tokens that decode to text on their own (no partial UTF-8, no special tokens)."""
    special = set(tokenizer.all_special_ids)
    return [i for i in range(len(tokenizer)) if i not in special
            and "\ufffd" not in (text := tokenizer.decode([i])) and text.strip()]


@pytest.mark.parametrize("arch", ["qwen2_vl", "gemma3"])
def test_text_is_released_at_once_and_ends_as_mlx_vlm_s(arch, tiny_model):
    loaded = load_model(str(tiny_model(arch)))
    prototype = detokenizer_prototype(loaded)
    pool = clean_ids(loaded.tokenizer)
    rng = random.Random(0)
    held_first = 0
    for _ in range(100):
        ids = [rng.choice(pool) for _ in range(rng.randint(1, 10))]
        ours, theirs = new_detokenizer(prototype), make_streaming_detokenizer(loaded.processor)
        for index, token in enumerate(ids):
            ours.add_token(token)
            theirs.add_token(token)
            if index == 0:
                assert ours.last_segment, "a whole first token's text is released at once"
                held_first += not theirs.last_segment
        ours.finalize()
        theirs.finalize()
        assert ours.text == theirs.text
    assert held_first > 50  # mlx-vlm's holds most first words back a token
