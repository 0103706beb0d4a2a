"""The chat stream's fast chunk renderer writes the same JSON as the chunk model would."""

from __future__ import annotations

import json

import pytest

from vllm_mlx.openai.protocol import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChoiceLogprobs,
    DeltaMessage,
    TokenLogprobOut,
    TopLogprob,
    UsageInfo,
)
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
