"""Reasoning in chat completions on live tiny servers, through the OpenAI SDK.

Random weights say nothing useful, so each reply here is scripted: the test decodes it
under a grammar that allows exactly one text (the engine's real constrained decoding, set
on the request's sampling). Covered: ``reasoning_content`` (and ``reasoning``) on the
message and as stream deltas sent before any content, for think tags (qwen3) and Harmony
channels (gpt-oss, whose markers are special tokens); ``--reasoning-parser none`` and a
model without a reasoning format leave replies untouched; ``chat_template_kwargs`` (and the
``enable_thinking`` shortcut) reach the template; reserved template arguments are 400s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace

import openai
import pytest

from tests.live_server import serving
from vllm_mlx.config import Settings
from vllm_mlx.openai import chat_prepare
from vllm_mlx.openai.reasoning import reasoning_parser

HI = [{"role": "user", "content": "hi"}]
# <think> and </think> are single tokens of tiny qwen3 (780, 781); Harmony's markers are
# special tokens of tiny gpt-oss: <|channel|> 760, <|start|> 761, <|end|> 762, <|message|> 763
SCRIPTS = {
    "qwen3": 'start: <[780]> "\\nplan a<b\\n" <[781]> "\\n\\nThe answer."',
    "gpt_oss": 'start: <[760]> "analysis" <[763]> "plan a<b" <[762]> <[761]> "assistant" '
               '<[760]> "final" <[763]> "The answer."',
    "llama": 'start: "<think>plan</think>The answer."',
}


@pytest.fixture(scope="module")
def urls(engine_for, tmp_path_factory) -> Iterator[dict[str, str]]:
    from contextlib import ExitStack

    from vllm_mlx.api.app import create_app

    with ExitStack() as stack:
        out = {}
        for name, arch, options in (("qwen3", "qwen3", {}), ("gpt_oss", "gpt_oss", {}),
                                    ("llama", "llama", {}),
                                    ("qwen3-none", "qwen3", {"reasoning_parser": "none"})):
            settings = Settings(model=f"tiny:{arch}", storage_path=tmp_path_factory.mktemp(name),
                                **options)
            port = stack.enter_context(serving(create_app(settings, engine_for(arch))))
            out[name] = f"http://127.0.0.1:{port}/v1"
        yield out


@pytest.fixture
def scripted(monkeypatch):
    """``scripted(arch)``: replies of the next requests are that architecture's script."""
    original = chat_prepare.sampling_params

    def use(arch: str) -> None:
        monkeypatch.setattr(chat_prepare, "sampling_params", lambda *a, **k: replace(
            original(*a, **k), grammar=SCRIPTS[arch]))

    return use


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)


@pytest.mark.parametrize("arch", ["qwen3", "gpt_oss"])
def test_reasoning_is_its_own_field(urls, scripted, arch):
    scripted(arch)
    reply = client(urls[arch]).chat.completions.create(model="default", messages=HI,
                                                       max_tokens=60)
    message = reply.choices[0].message
    assert message.content == "The answer."
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == extra["reasoning"] == "plan a<b"
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("arch", ["qwen3", "gpt_oss"])
def test_streamed_reasoning_comes_first_in_deltas_of_its_own(urls, scripted, arch):
    scripted(arch)
    stream = client(urls[arch]).chat.completions.create(model="default", messages=HI,
                                                        max_tokens=60, stream=True)
    kinds, reasoning, content = [], "", ""
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta.model_extra or {}
            if delta.get("reasoning_content"):
                assert delta["reasoning"] == delta["reasoning_content"]
                assert not choice.delta.content  # never in the same delta
                kinds.append("reasoning")
                reasoning += delta["reasoning_content"]
            if choice.delta.content:
                kinds.append("content")
                content += choice.delta.content
    assert reasoning == "plan a<b" and content == "The answer."
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")  # all reasoning first
    assert kinds.count("reasoning") > 1  # streamed, not gathered


@pytest.mark.parametrize(("server", "arch", "content"), [
    ("qwen3-none", "qwen3", "<think>\nplan a<b\n</think>\n\nThe answer."),
    ("llama", "llama", "<think>plan</think>The answer."),  # its template has no <think>
])
def test_without_a_parser_replies_are_untouched(urls, scripted, server, arch, content):
    scripted(arch)
    message = client(urls[server]).chat.completions.create(
        model="default", messages=HI, max_tokens=60).choices[0].message
    assert message.content == content
    assert "reasoning_content" not in (message.model_extra or {})


def test_template_kwargs_reach_the_chat_template(urls):
    sdk = client(urls["qwen3"])

    def prompt_tokens(**extra) -> int:
        reply = sdk.chat.completions.create(model="default", messages=HI, max_tokens=1,
                                            extra_body=extra)
        assert reply.usage is not None
        return reply.usage.prompt_tokens

    plain = prompt_tokens()
    # qwen3's template closes an empty <think></think> in the prompt when thinking is off
    off = prompt_tokens(chat_template_kwargs={"enable_thinking": False})
    assert off > plain
    assert prompt_tokens(enable_thinking=False) == off
    assert prompt_tokens(chat_template_kwargs={"enable_thinking": True}) == plain


@pytest.mark.parametrize("kwargs", [{"tools": []}, {"add_generation_prompt": False},
                                    {"not an identifier": 1}])
def test_template_kwargs_may_not_replace_the_renderer_s_own(urls, kwargs):
    with pytest.raises(openai.BadRequestError) as info:
        client(urls["qwen3"]).chat.completions.create(
            model="default", messages=HI, max_tokens=1,
            extra_body={"chat_template_kwargs": kwargs})
    assert info.value.body["param"].startswith("chat_template_kwargs")  # type: ignore[index]


class _Tokenizer:
    """A template that opens <think> in the prompt unless thinking is off (DeepSeek-R1,
    Qwen3 thinking-only models)."""

    chat_template = "{{ '<|im_start|>assistant\\n<think>\\n' }}"

    def apply_chat_template(self, messages, add_generation_prompt, tokenize,
                            enable_thinking=True):
        return "<|im_start|>assistant\n" + ("<think>\n" if enable_thinking else "")


def test_a_prompt_that_opens_think_starts_replies_inside_reasoning():
    loaded = SimpleNamespace(tokenizer=_Tokenizer(), processor=None, config={},
                             is_vision=False, reference="fake", memo={})
    parser = reasoning_parser(loaded, "auto", {})
    assert parser is not None and parser.starts_inside
    assert parser.split("steps\n</think>\n\nDone") == ("steps", "Done")
    closed = reasoning_parser(loaded, "auto", {"enable_thinking": False})
    assert closed is not None and not closed.starts_inside
    assert reasoning_parser(loaded, "none", {}) is None
