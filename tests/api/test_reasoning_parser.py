"""Reasoning parsers on hand-written replies: think tags (opened in the reply or by the
prompt) and Harmony channels, whole and streamed in random chunkings (tags split across
pieces), and which parser a model gets."""

from __future__ import annotations

import random

import pytest

from vllm_mlx.openai.reasoning import (
    ReasoningParser,
    opens_reasoning,
    parser_name,
    partial_tail,
)

THINK = ReasoningParser("think")
THINK_INSIDE = ReasoningParser("think", starts_inside=True)
HARMONY = ReasoningParser("harmony")

CASES = [
    (THINK, "<think>\nplan a < b\n</think>\n\nThe answer.", ("plan a < b", "The answer.")),
    (THINK, "  <think>x</think>y", ("x", "y")),
    (THINK, "No tags at all.", ("", "No tags at all.")),
    (THINK, "Answer first <think>not reasoning</think>", ("", "Answer first <think>not "
                                                              "reasoning</think>")),
    (THINK, "<think>cut short before it clo", ("cut short before it clo", "")),
    (THINK, "<think>a</think>b</think>c", ("a", "b</think>c")),
    (THINK, "<think>\n\n</think>\n\nHi", ("", "Hi")),
    (THINK, "<thin", ("", "<thin")),
    (THINK_INSIDE, "\nsteps\n</think>\n\nDone", ("steps", "Done")),
    (THINK_INSIDE, "<think>steps</think>Done", ("steps", "Done")),
    (THINK_INSIDE, "never closed", ("never closed", "")),
    (HARMONY, "<|channel|>analysis<|message|>Think <b>.<|end|><|start|>assistant"
              "<|channel|>final<|message|>Final <|answer.", ("Think <b>.", "Final <|answer.")),
    (HARMONY, "<|channel|>final<|message|>Only the answer", ("", "Only the answer")),
    (HARMONY, "plain text, no markers", ("", "plain text, no markers")),
    (HARMONY, "<|channel|>analysis<|message|>cut", ("cut", "")),
    (HARMONY, "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>commentary"
              " to=functions.f <|constrain|>json<|message|>{\"x\": 1}<|call|>",
     ("a", "<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json"
           "<|message|>{\"x\": 1}<|call|>")),
    (HARMONY, "<|channel|>analysis<|message|>r<|end|><|start|>assistant<|chan", ("r", "")),
]


@pytest.mark.parametrize(("parser", "reply", "expected"), CASES)
def test_whole_reply(parser, reply, expected):
    assert parser.split(reply) == expected


def _chunked(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 12))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]


@pytest.mark.parametrize(("parser", "reply", "expected"), CASES)
def test_streamed_in_random_pieces_joins_up_to_the_whole(parser, reply, expected):
    rng = random.Random(reply)
    for _ in range(40):
        stream, reasoning, content = parser.stream(), "", ""
        for piece in [*_chunked(reply, rng), *([""] if rng.random() < 0.3 else [])]:
            r, c = stream.feed(piece)
            reasoning, content = reasoning + r, content + c
        r, c = stream.finish()
        assert (reasoning + r, content + c) == expected


def test_character_by_character_holds_back_only_partial_tags():
    stream = THINK.stream()
    out = [stream.feed(ch) for ch in "<think>ab</think>cd"]
    # "<think>" is held until whole; "a" is sent at once; "</think>" held until whole
    assert out[6:9] == [("", ""), ("a", ""), ("b", "")]
    assert out[-2:] == [("", "c"), ("", "d")]
    harmony = HARMONY.stream()
    sent = [harmony.feed(p) for p in ("<|channel|>", "analysis", "<|message|>", "x <",
                                      "y", "<|en", "d|>")]
    assert sent[3] == ("x ", "") and sent[4] == ("<y", "") and sent[5:] == [("", "")] * 2


def test_partial_tail():
    assert partial_tail("abc</th", ("</think>",)) == 4
    assert partial_tail("abc", ("</think>",)) == 0
    assert partial_tail("x<|e", ("<|end|>", "<|start|>")) == 3


QWEN3_LIKE = "{%- if enable_thinking is false -%}<think>\n\n</think>{%- endif -%}"


@pytest.mark.parametrize(("setting", "template", "config", "expected"), [
    ("auto", QWEN3_LIKE, {}, "think"),
    ("auto", "<|start|>assistant<|channel|>final<|message|>", {}, "harmony"),
    ("auto", "", {"model_type": "gpt_oss"}, "harmony"),
    ("auto", "{{ messages }}", {"model_type": "llama"}, None),
    ("none", QWEN3_LIKE, {}, None),
    ("deepseek_r1", "{{ messages }}", {}, "think"),
    ("gpt_oss", QWEN3_LIKE, {}, "harmony"),
])
def test_parser_name(setting, template, config, expected):
    assert parser_name(setting, template, config) == expected


def test_unknown_parser_name_is_refused():
    with pytest.raises(ValueError, match="unknown reasoning parser"):
        parser_name("mistral", "", {})


def test_prompt_that_opens_reasoning():
    assert opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not opens_reasoning("<|im_start|>assistant\n")


def test_reasoning_parser_option():
    from vllm_mlx.cli import build_parser, settings_from_args

    def parsed(*extra: str):
        return settings_from_args(build_parser().parse_args(["serve", "tiny:qwen3", *extra]))

    assert parsed().reasoning_parser == "auto"
    assert parsed("--reasoning-parser", "gpt_oss").reasoning_parser == "gpt_oss"
    with pytest.raises(SystemExit):
        parsed("--reasoning-parser", "bogus")
