"""Token bytes rebuild the text the tokens spell; a raw prompt's continuation keeps its
first space, a chat reply's is trimmed as mlx-lm and mlx-vlm show it."""

from __future__ import annotations

import random

import pytest

from vllm_mlx.engine.loader import load_model
from vllm_mlx.engine.tokens import Vocabulary

ARCHS = {"qwen3": True, "gemma3": False}  # byte-level BPE, SentencePiece: trims a chat reply


@pytest.fixture(scope="module", params=sorted(ARCHS))
def vocab(request, tiny_model) -> Vocabulary:
    vocab = Vocabulary(load_model(str(tiny_model(request.param))))
    vocab.trims_chat = ARCHS[request.param]  # type: ignore[attr-defined]
    return vocab


def _ordinary(vocab: Vocabulary) -> list[int]:
    special = set(vocab.tokenizer.all_special_ids)
    return [i for i in range(len(vocab.tokenizer)) if i not in special]


def test_joined_token_bytes_are_the_decoded_text(vocab):
    whole = [i for i in _ordinary(vocab) if "\ufffd" not in vocab.text(i)]
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.choice(whole) for _ in range(rng.randint(1, 8))]
        joined = b"".join(vocab.raw_bytes(i) for i in ids).decode("utf-8")
        assert joined.lstrip(" ") == vocab.tokenizer.decode(ids).lstrip(" "), ids


@pytest.mark.parametrize("char", ["\u00e9", "\u20ac"])  # two and three UTF-8 bytes
def test_tokens_of_one_character_carry_its_bytes(vocab, char):
    by_bytes = {vocab.raw_bytes(i): i for i in _ordinary(vocab)}
    ids = [by_bytes[bytes([b])] for b in char.encode()]
    assert all(vocab.text(i) == "\ufffd" for i in ids)  # what their text alone shows
    assert b"".join(vocab.raw_bytes(i) for i in ids) == char.encode()
    assert vocab.tokenizer.decode(ids) == char


def test_only_a_continuation_always_keeps_the_first_space(vocab):
    spaced = next(i for i in _ordinary(vocab)
                  if vocab.raw_bytes(i).startswith(b" ") and vocab.raw_bytes(i).strip())
    word = vocab.raw_bytes(spaced).decode()
    chat = word[1:] if vocab.trims_chat else word
    for continuation, expected in ((True, word), (False, chat)):
        detokenizer = vocab.detokenizer(continuation=continuation)
        detokenizer.add_token(spaced)
        detokenizer.finalize()
        assert detokenizer.text == expected
