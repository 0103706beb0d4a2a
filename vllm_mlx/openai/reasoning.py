"""Reasoning ("thinking") in a model's replies, told apart from the answer.

Framework-free. Two formats, and none:

- ``think``: ``<think>...</think>`` before the answer (Qwen3, DeepSeek-R1 distills, QwQ).
  A template may open ``<think>`` in the prompt itself, so the reply starts inside the
  reasoning and only ``</think>`` appears: :class:`ReasoningParser` ``starts_inside``.
  Only a ``<think>`` at the very start of a reply opens reasoning, and only the first
  ``</think>`` closes it: whatever follows is the answer, tags and all. Whitespace around
  the reasoning and before the answer is dropped; a reply without tags is all answer (or,
  started inside, all reasoning: cut short before it closed).
- ``harmony``: gpt-oss's channels, ``<|channel|>analysis<|message|>...<|end|>
  <|start|>assistant<|channel|>final<|message|>...``. The markers are special tokens, so
  these replies are decoded with them (:attr:`ReasoningParser.keeps_special_tokens`). The
  ``analysis`` channel is reasoning; ``final`` and ``commentary`` are the answer; a message
  to a recipient (``to=functions.NAME``, a tool call) goes to the answer verbatim, markers
  included, for a tool-call reader. A reply that does not start like a Harmony message is
  all answer.

:meth:`ReasoningParser.stream` splits a reply as it streams: each ``feed`` returns the
``(reasoning, content)`` text that is certain, holding back only what may be the start of
a tag or marker (and whitespace that may be trimmed); ``finish`` returns the rest.
:meth:`ReasoningParser.split` is the same on a finished reply, so a streamed reply joins
up to exactly the split of the whole one.

:func:`reasoning_parser` is a chat request's parser on a loaded model. Which format a
model has (:func:`parser_name`): ``--reasoning-parser`` (``think``, ``harmony``, their vLLM
names ``qwen3``, ``deepseek_r1``, ``gpt_oss``, or ``none``), else its chat template:
Harmony markers (or a gpt-oss config) -> ``harmony``, ``<think>`` -> ``think``, else none
(replies are untouched, as without this module). Whether a think-tag template opens
``<think>`` in the prompt is learnt by rendering a one-message probe with the request's
template variables (``enable_thinking`` may change it), once per model and set of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..engine.chat_format import chat_templates
from .tool_formats.base import partial_tail

Split = tuple[str, str]  # (reasoning, content)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
START, CHANNEL, MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
MESSAGE_ENDS = ("<|end|>", "<|return|>", "<|call|>")
HARMONY_MARKERS = (START, CHANNEL, MESSAGE, *MESSAGE_ENDS)
MAX_HEADER = 256  # a Harmony header longer than this is not one: the reply is plain text

PARSER_NAMES = {"think": "think", "qwen3": "think", "deepseek_r1": "think",
                "harmony": "harmony", "gpt_oss": "harmony"}
CHOICES = ("auto", "none", *PARSER_NAMES)
_CHANNEL_NAME = re.compile(r"<\|channel\|>\s*(\w+)")
_RECIPIENT = re.compile(r"(?:^|\s)to=")


class ReasoningStream(Protocol):
    def feed(self, text: str) -> Split: ...

    def finish(self) -> Split: ...


@dataclass(frozen=True)
class ReasoningParser:
    """One model's reasoning format, for one rendered prompt."""

    name: str  # "think" | "harmony"
    starts_inside: bool = False  # think: the prompt ends in an open <think>

    @property
    def keeps_special_tokens(self) -> bool:
        """Whether replies must be decoded with special tokens (Harmony's markers are)."""
        return self.name == "harmony"

    def stream(self) -> ReasoningStream:
        if self.name == "harmony":
            return HarmonyStream()
        return ThinkStream(self.starts_inside)

    def split(self, text: str) -> Split:
        reader = self.stream()
        first, last = reader.feed(text), reader.finish()
        return first[0] + last[0], first[1] + last[1]


class ThinkStream:
    """``<think>`` / ``</think>`` (see the module)."""

    def __init__(self, starts_inside: bool = False) -> None:
        self.starts_inside = starts_inside
        self.state = "start"  # start -> reasoning -> after -> content
        self.buffer = ""
        self.reasoning_started = False

    def feed(self, text: str) -> Split:
        self.buffer += text
        reasoning, content = "", ""
        while True:
            if self.state == "start" and not self._start():
                break
            if self.state == "reasoning":
                piece, done = self._reasoning()
                reasoning += piece
                if not done:
                    break
            if self.state == "after":
                self.buffer = self.buffer.lstrip()
                if not self.buffer:
                    break
                self.state = "content"
            if self.state == "content":
                content, self.buffer = content + self.buffer, ""
                break
        return reasoning, content

    def _start(self) -> bool:
        """Decide whether the reply opens with ``<think>``; False: not known yet."""
        head = self.buffer.lstrip()
        if head.startswith(THINK_OPEN):
            self.buffer, self.state = head[len(THINK_OPEN):], "reasoning"
        elif not head or THINK_OPEN.startswith(head):
            return False
        else:
            self.state = "reasoning" if self.starts_inside else "content"
        return True

    def _reasoning(self) -> tuple[str, bool]:
        """The reasoning text that is certain, and whether ``</think>`` was reached."""
        end = self.buffer.find(THINK_CLOSE)
        if end >= 0:
            body, self.buffer = self.buffer[:end], self.buffer[end + len(THINK_CLOSE):]
            self.state = "after"
            return self._trimmed(body.rstrip()), True
        safe = len(self.buffer) - partial_tail(self.buffer, (THINK_CLOSE,))
        body = self.buffer[:safe].rstrip()  # trailing whitespace may precede </think>
        self.buffer = self.buffer[len(body):]
        return self._trimmed(body), False

    def _trimmed(self, body: str) -> str:
        if not self.reasoning_started:
            body = body.lstrip()
            self.reasoning_started = bool(body)
        return body

    def finish(self) -> Split:
        rest, self.buffer = self.buffer, ""
        if self.state == "start":
            if self.starts_inside:
                return self._trimmed(rest.strip()), ""
            return "", rest
        if self.state == "reasoning":
            return self._trimmed(rest.rstrip()), ""
        return "", "" if self.state == "after" else rest


class HarmonyStream:
    """gpt-oss's Harmony messages (see the module)."""

    def __init__(self) -> None:
        self.state = "first"  # first -> header <-> body; or plain
        self.buffer = ""
        self.channel = ""
        self.verbatim = False  # a message to a recipient: passed on with its markers

    def feed(self, text: str) -> Split:
        self.buffer += text
        reasoning, content = "", ""
        while self.buffer:
            if self.state == "first" and not self._first():
                break
            if self.state == "plain":
                content, self.buffer = content + self.buffer, ""
            elif self.state == "header":
                verbatim = self._header()
                if verbatim is None:
                    break
                content += verbatim
            elif self.state == "body":
                piece, done = self._body()
                if self.channel == "analysis" and not self.verbatim:
                    reasoning += piece
                else:
                    content += piece
                if not done:
                    break
        return reasoning, content

    def _first(self) -> bool:
        """Whether the reply starts like a Harmony message; False: not known yet."""
        head = self.buffer
        openings = (CHANNEL, START, " to=")
        if any(head.startswith(o) for o in openings):
            self.state = "header"
        elif any(o.startswith(head) for o in openings):
            return False
        else:
            self.state = "plain"
        return True

    def _header(self) -> str | None:
        """Read a message's header up to ``<|message|>``: None while it is incomplete, else
        what the answer gets of it (a recipient's message keeps its header)."""
        end = self.buffer.find(MESSAGE)
        if end < 0:
            if len(self.buffer) > MAX_HEADER:
                self.state = "plain"
                return ""
            return None
        header, self.buffer = self.buffer[:end], self.buffer[end + len(MESSAGE):]
        found = _CHANNEL_NAME.search(header)
        self.channel = found.group(1) if found else ""
        self.verbatim = _RECIPIENT.search(header) is not None
        self.state = "body"
        return header + MESSAGE if self.verbatim else ""

    def _body(self) -> tuple[str, bool]:
        """The message text that is certain, and whether its end marker was reached."""
        ends = [(i, m) for m in (*MESSAGE_ENDS, START) if (i := self.buffer.find(m)) >= 0]
        if not ends:
            safe = len(self.buffer) - partial_tail(self.buffer, HARMONY_MARKERS)
            body, self.buffer = self.buffer[:safe], self.buffer[safe:]
            return body, False
        end, marker = min(ends)
        body = self.buffer[:end]
        consumed = end + (0 if marker == START else len(marker))
        self.buffer = self.buffer[consumed:]
        self.state = "header"
        return body + (marker if self.verbatim and marker != START else ""), True

    def finish(self) -> Split:
        rest, self.buffer = self.buffer, ""
        if self.state in ("first", "plain"):
            return "", rest
        if self.state == "body":
            return (rest, "") if self.channel == "analysis" and not self.verbatim \
                else ("", rest)
        return "", ""  # a header cut short: no message text yet


def template_source(loaded: Any) -> str:
    """The model's chat template text (every named one), or ``""``."""
    return "\n".join(chat_templates(loaded).values())


def parser_name(setting: str, template: str, config: Mapping[str, Any]) -> str | None:
    """The reasoning format to read replies with (see the module); None: none."""
    if setting == "none":
        return None
    if setting != "auto":
        if setting not in PARSER_NAMES:
            raise ValueError(f"unknown reasoning parser {setting!r}: one of "
                             f"{', '.join(CHOICES)}")
        return PARSER_NAMES[setting]
    if CHANNEL in template or str(config.get("model_type", "")) == "gpt_oss":
        return "harmony"
    if THINK_OPEN in template or THINK_CLOSE in template:
        return "think"
    return None


def opens_reasoning(rendered_prompt: str) -> bool:
    """Whether a rendered prompt leaves a ``<think>`` open for the reply to continue."""
    return rendered_prompt.rstrip().endswith(THINK_OPEN)


_PROBE_KEEP = 256  # sets of template kwargs whose probe render a model remembers


def reasoning_parser(loaded: Any, setting: str, template_kwargs: Mapping[str, Any]
                     ) -> ReasoningParser | None:
    """The parser for a chat request's replies on ``loaded`` (a :class:`LoadedModel`), or
    None when the model has no reasoning format. For think tags, whether the prompt opens
    ``<think>`` is learnt by rendering a one-message probe with the request's template
    variables, once per model and set of variables (blocking: call off the event loop)."""
    name = parser_name(setting, template_source(loaded), loaded.config)
    if name != "think":
        return None if name is None else ReasoningParser(name)
    probes = loaded.memo.setdefault("reasoning_probes", {})
    key = _probe_key(template_kwargs)
    known = probes.get(key)
    if known is None:
        if len(probes) >= _PROBE_KEEP:
            probes.clear()
        known = probes[key] = _probe_opens_reasoning(loaded, template_kwargs)
    return ReasoningParser("think", starts_inside=known)


def parser_is_quick(loaded: Any, setting: str, template_kwargs: Mapping[str, Any]) -> bool:
    """Whether :func:`reasoning_parser` answers without rendering a probe (then it may run
    on the event loop: it only reads the template's text)."""
    if parser_name(setting, template_source(loaded), loaded.config) != "think":
        return True
    return _probe_key(template_kwargs) in loaded.memo.get("reasoning_probes", {})


def _probe_key(template_kwargs: Mapping[str, Any]) -> str:
    return json.dumps(dict(template_kwargs), sort_keys=True, default=str)


def _probe_opens_reasoning(loaded: Any, template_kwargs: Mapping[str, Any]) -> bool:
    from ..engine.inputs import render_text_prompt, render_vision_prompt
    from ..engine.types import ChatMessage, GenerationRequest

    probe = GenerationRequest(messages=(ChatMessage.text("user", "Hello"),),
                              template_kwargs=dict(template_kwargs))
    try:
        text = (render_vision_prompt(loaded, probe).text if loaded.is_vision
                else render_text_prompt(loaded, probe))
    except Exception:  # the request's own render reports what is wrong with it
        return False
    return opens_reasoning(text)
