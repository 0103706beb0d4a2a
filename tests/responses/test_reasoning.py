"""Reasoning on the tiny qwen3 model (think tags), parsed by the chat feature, as a
``reasoning`` output item before the message, and as ``response.reasoning_text.*`` events
when streamed. The reply is scripted: decoded under a grammar that allows exactly one text
(as tests/api/test_reasoning_chat.py does for chat)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.responses.conftest import sdk
from vllm_mlx.openai import chat_prepare

# <think> and </think> are single tokens of tiny qwen3 (780, 781)
SCRIPT = 'start: <[780]> "\\nplan a<b\\n" <[781]> "\\n\\nThe answer."'


@pytest.fixture
def scripted(monkeypatch):
    original = chat_prepare.sampling_params
    monkeypatch.setattr(chat_prepare, "sampling_params", lambda *a, **k: replace(
        original(*a, **k), grammar=SCRIPT))


def test_reasoning_is_an_output_item(text_url, scripted):
    response = sdk(text_url).responses.create(model="default", input="hi",
                                              max_output_tokens=60,
                                              reasoning={"effort": "low"})
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "plan a<b"
    assert response.output_text == "The answer." and response.status == "completed"
    assert response.reasoning.effort == "low"


def test_streamed_reasoning_events(text_url, scripted):
    with sdk(text_url).responses.stream(model="default", input="hi",
                                        max_output_tokens=60) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    first_text = kinds.index("response.output_text.delta")
    assert "response.reasoning_text.delta" in kinds[:first_text]
    done = next(e for e in events if e.type == "response.reasoning_text.done")
    assert done.text == "plan a<b" and done.output_index == 0
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "The answer."
    # the next turn continues from it; the reasoning item is stored but not shown again
    follow = sdk(text_url).responses.create(model="default", previous_response_id=final.id,
                                            input="more", max_output_tokens=60)
    items = sdk(text_url).responses.input_items.list(follow.id, order="asc").data
    assert [i.type for i in items] == ["message", "reasoning", "message", "message"]
