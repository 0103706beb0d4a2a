"""Tokens at the API: logprob ``bytes`` are each token's own bytes, a text completion
continues its prompt verbatim (first space included), and a prompt may be token ids."""

from __future__ import annotations

import pytest

from tests.api.conftest import make_client
from tests.api.test_chat import chat
from vllm_mlx.engine.loader import load_model
from vllm_mlx.engine.tokens import Vocabulary


@pytest.fixture(scope="module")
def vocab(tiny_model) -> Vocabulary:
    return Vocabulary(load_model(str(tiny_model("qwen3"))))


@pytest.fixture(scope="module")
def text_client(engine_for, media_dir):
    """A text model: mlx-lm's detokenizer trims a reply's first space, mlx-vlm's need not."""
    with make_client(engine_for("qwen3"), media_dir) as client:
        yield client


def test_logprob_bytes_are_the_token_s_own(text_client, vocab):
    by_bytes = {vocab.raw_bytes(i): i for i in range(len(vocab.tokenizer))}
    halves = {by_bytes[bytes([b])]: b for b in "\u00e9".encode()}  # two tokens, one char
    r = chat(text_client, [{"role": "user", "content": "Hi"}], max_tokens=4, logprobs=True,
             top_logprobs=2, logit_bias={str(i): 100 for i in halves})
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert len(content) == 4
    for item in content:
        assert item["token"] == "\ufffd" and item["bytes"] in ([b] for b in halves.values())
        assert sorted(top["bytes"] for top in item["top_logprobs"]) == sorted(
            [b] for b in halves.values())


def test_a_completion_keeps_its_first_space(text_client, vocab):
    spaced = next(i for i in range(len(vocab.tokenizer))
                  if vocab.text(i).startswith(" ") and vocab.text(i).strip().isalpha())
    word = vocab.text(spaced)
    forced = {"max_tokens": 1, "logit_bias": {str(spaced): 100}}
    completion = text_client.post("/v1/completions", json={"prompt": "Once upon", **forced})
    assert completion.json()["choices"][0]["text"] == word
    echoed = text_client.post("/v1/completions",
                            json={"prompt": "Once upon", "echo": True, **forced})
    assert echoed.json()["choices"][0]["text"] == "Once upon" + word


def test_a_prompt_of_token_ids_completes_as_its_text(text_client, vocab):
    ids = vocab.tokenizer.encode("Once upon a time", add_special_tokens=False)
    base = {"max_tokens": 6, "temperature": 0}
    as_text = text_client.post("/v1/completions", json={"prompt": "Once upon a time", **base})
    as_ids = text_client.post("/v1/completions", json={"prompt": ids, **base})
    assert as_ids.status_code == 200, as_ids.text
    assert as_ids.json()["choices"][0]["text"] == as_text.json()["choices"][0]["text"]
    assert as_ids.json()["usage"]["prompt_tokens"] == len(ids)
    batch = text_client.post("/v1/completions",
                             json={"prompt": [ids, ids[:2]], "n": 2, "echo": True, **base})
    texts = [c["text"] for c in batch.json()["choices"]]
    assert texts[0] == texts[1] == "Once upon a time" + as_text.json()["choices"][0]["text"]
    assert texts[2].startswith(vocab.tokenizer.decode(ids[:2])) and len(texts) == 4


@pytest.mark.parametrize("prompt", [[10**9], [1, "a"], [[]], [-1]])
def test_bad_token_id_prompts_are_400(text_client, prompt):
    r = text_client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 2})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith("prompt")
