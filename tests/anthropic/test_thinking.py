"""``thinking`` in the Messages API, through the official SDK on a live tiny qwen3 server.

Replies are scripted (decoded under a grammar that allows one text, see
tests/api/test_reasoning_chat.py): ``<think>plan a<b</think>The answer.``. With thinking
enabled the reasoning is a ``thinking`` block (with a signature) before the text, streamed
as ``thinking_delta`` then ``signature_delta``; disabled or absent, the template's
``enable_thinking`` switch is off (the prompt differs) and no thinking block is sent."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.anthropic.conftest import sdk
from tests.api.test_reasoning_chat import SCRIPTS
from vllm_mlx.openai import chat_prepare

HI = [{"role": "user", "content": "hi"}]
ENABLED = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
def scripted(monkeypatch):
    original = chat_prepare.sampling_params
    monkeypatch.setattr(chat_prepare, "sampling_params", lambda *a, **k: replace(
        original(*a, **k), grammar=SCRIPTS["qwen3"]))


def test_enabled_thinking_is_a_block_before_the_text(text_url, scripted):
    message = sdk(text_url).messages.create(model="claude-sonnet-4-5", max_tokens=60,
                                            messages=HI, thinking=ENABLED)
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text"]
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "plan a<b"
    assert thinking.signature
    assert text.type == "text" and text.text == "The answer."
    assert message.stop_reason == "end_turn"


def test_enabled_thinking_streams_thinking_deltas_then_signature(text_url, scripted):
    with sdk(text_url).messages.stream(model="claude-sonnet-4-5", max_tokens=60,
                                       messages=HI, thinking=ENABLED) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    first_text = deltas.index("text_delta")
    assert set(deltas[:first_text - 1]) == {"thinking_delta"}
    assert deltas[first_text - 1] == "signature_delta"
    assert set(deltas[first_text:]) == {"text_delta"}
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text"]
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "plan a<b"  # type: ignore[union-attr]
    assert final.content[1].text == "The answer."  # type: ignore[union-attr]


@pytest.mark.parametrize("thinking", [None, {"type": "disabled"}])
def test_without_thinking_no_block_is_sent(text_url, scripted, thinking):
    extra = {} if thinking is None else {"thinking": thinking}
    message = sdk(text_url).messages.create(model="claude-sonnet-4-5", max_tokens=60,
                                            messages=HI, **extra)
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == \
        [("text", "The answer.")]
    with sdk(text_url).messages.stream(model="claude-sonnet-4-5", max_tokens=60,
                                       messages=HI, **extra) as stream:
        kinds = {e.delta.type for e in stream if e.type == "content_block_delta"}
    assert kinds == {"text_delta"}


def test_thinking_switches_the_template(text_url):
    """qwen3's template writes an empty <think></think> into the prompt when thinking is
    off: count_tokens sees the prompt each setting renders."""
    client = sdk(text_url)

    def count(**extra) -> int:
        return client.messages.count_tokens(model="claude-sonnet-4-5", messages=HI,
                                            **extra).input_tokens

    enabled, absent = count(thinking=ENABLED), count()
    assert absent > enabled
    assert count(thinking={"type": "disabled"}) == absent
