"""The chat stream's fast chunk renderer writes the same JSON as the chunk model would."""

from __future__ import annotations

import json

import pytest

from vllm_mlx.engine import GenerationChunk
from vllm_mlx.openai.protocol import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChoiceLogprobs,
    DeltaMessage,
    TokenLogprobOut,
    TopLogprob,
    UsageInfo,
)
from vllm_mlx.openai.reasoning import ThinkStream
from vllm_mlx.openai.serving_chat import _deltas, _plain_events
from vllm_mlx.openai.serving_common import ChunkRenderer, sse

CHOICES = [
    [ChatChunkChoice(index=0, delta=DeltaMessage(role="assistant", content="")),
     ChatChunkChoice(index=1, delta=DeltaMessage(role="assistant", content=""))],
    [ChatChunkChoice(index=0, delta=DeltaMessage(content=' "quoted"\n\\ é 漢字 \u2028'))],
    [ChatChunkChoice(index=2, delta=DeltaMessage(), finish_reason="length")],
    [ChatChunkChoice(index=0, delta=DeltaMessage(content="x"), logprobs=ChoiceLogprobs(
        content=[TokenLogprobOut(token="x", logprob=-0.25, bytes=[120], top_logprobs=[
            TopLogprob(token="y", logprob=-9999.0, bytes=[121])])]))],
    [ChatChunkChoice(index=0, delta=DeltaMessage(content=None, tool_calls=[
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "f", "arguments": "{\"a\": 1}"}}]), finish_reason=None)],
    [],
]


@pytest.mark.parametrize("choices", CHOICES)
@pytest.mark.parametrize("usage", [None, UsageInfo(prompt_tokens=3, completion_tokens=4,
                                                   total_tokens=7),
                                   UsageInfo(prompt_tokens=3, completion_tokens=4,
                                             total_tokens=7,
                                             prompt_tokens_details={"cached_tokens": 2})])
def test_the_renderer_writes_what_the_chunk_model_would(choices: list[ChatChunkChoice],
                                                        usage: UsageInfo | None) -> None:
    render = ChunkRenderer("chatcmpl-1", 1700000000, "tiny \"model\"")
    expected = sse(ChatCompletionChunk(id="chatcmpl-1", created=1700000000,
                                       model="tiny \"model\"", choices=choices,
                                       usage=usage).model_dump(exclude_none=False))
    event = render(choices, usage)
    assert event.startswith("data: {") and event.endswith("}\n\n")
    assert json.loads(event[6:]) == json.loads(expected[6:])
    assert list(json.loads(event[6:])) == list(json.loads(expected[6:]))  # key order too


@pytest.mark.parametrize("index", [0, 1, 17])
@pytest.mark.parametrize("text", ["x", ' "quoted"\n\\ é 漢字 \u2028\x00\x1f\x7f', "\ue000",
                                  "😀 </script>"])
def test_the_fast_paths_write_the_same_bytes_as_the_model_path(index: int,
                                                               text: str) -> None:
    render = ChunkRenderer("chatcmpl-1", 1700000000, "m \ue000 \"model\"")
    by_model = render([ChatChunkChoice(index=index, delta=DeltaMessage(content=text))])
    assert render.text(index, text) == by_model
    assert render.text(index, text) == by_model  # (the second time from the cached template)
    assert json.loads(by_model[6:])["choices"][0]["delta"] == {"content": text}
    thought = render([ChatChunkChoice(index=index, delta=DeltaMessage(
        reasoning_content=text, reasoning=text))])
    assert render.reasoning(index, text) == thought
    assert render.reasoning(index, text) == thought


PIECES = ["<think>", "plan", " a<", "b </th", "ink>", "\n\n", "Hello", "", " <b>wor", "ld"]


@pytest.mark.parametrize("thinking", [False, True])
def test_the_stream_fast_path_sends_what_the_deltas_would(thinking: bool) -> None:
    render = ChunkRenderer("chatcmpl-1", 1700000000, "m")
    fast_thinker, model_thinker = (ThinkStream(), ThinkStream()) if thinking else (None, None)
    fast, by_model = [], []
    for k, text in enumerate(PIECES):
        piece = GenerationChunk(text=text, token_ids=(k,), completion_tokens=k + 1)
        fast += _plain_events(render, 1, piece, fast_thinker)
        by_model += [render([c]) for c in _deltas(1, piece, None, False, model_thinker)]
    assert fast == by_model
    deltas = [json.loads(event[6:])["choices"][0]["delta"] for event in fast]
    kinds = {key for delta in deltas for key in delta}
    assert kinds == ({"reasoning_content", "reasoning", "content"} if thinking else {"content"})
