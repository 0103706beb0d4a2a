"""A streamed Messages reply as Anthropic's server-sent events.

Each event is ``event: NAME\\ndata: JSON\\n\\n``. :class:`MessageEvents` turns the engine's
chunks of one reply into ``message_start`` (sent with the first chunk, which knows the
prompt's token count), then content blocks: with ``thinking`` enabled, a ``thinking`` block
opened at the first reasoning (``thinking_delta``\\ s, then one ``signature_delta`` as it
closes, before any text); a ``text`` block opened at the first text
(``content_block_start``, a ``ping`` after the first block's start, ``text_delta``
``content_block_delta``\\ s, ``content_block_stop``) and, when the reply ends in tool calls
(read as the chat feature reads them, :class:`~vllm_mlx.openai.tool_calls.ToolCallStream`),
one ``tool_use`` block per call carrying its input as one ``input_json_delta``; then
``message_delta`` (``stop_reason``, ``stop_sequence``, ``usage``) and ``message_stop``. A
reply with neither text nor calls still has one (empty) text block. A failure after the
stream began is one ``error`` event in Anthropic's shape, and the stream ends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ..engine import GenerationChunk
from ..engine.submission import Submission
from ..errors import to_api_error
from ..openai.reasoning import ReasoningParser
from ..openai.serving_chat import OnReply, split_piece
from ..openai.serving_common import sse
from ..openai.tool_calls import ToolCall, ToolCallStream, ToolSet
from .protocol import StopReason, error_body, thinking_signature

StopFinder = Callable[[Sequence[int]], str | None]


def event(name: str, data: dict[str, Any]) -> str:
    return sse(data, name)


def error_event(exc: BaseException) -> str:
    return event("error", error_body(to_api_error(exc)))


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments as the ``input`` object (a call cut short keeps what parses)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def stop_reason(finish: str, calls: bool, stop: str | None) -> StopReason:
    """A finished reply's ``stop_reason`` from the engine's finish reason."""
    if finish == "length":
        return "max_tokens"
    if calls:
        return "tool_use"
    return "stop_sequence" if stop is not None else "end_turn"


class MessageEvents:
    """The events of one streamed reply (see the module)."""

    def __init__(self, message_id: str, model: str, tools: ToolSet | None,
                 find_stop: StopFinder, reasoning: ReasoningParser | None = None,
                 show_thinking: bool = False) -> None:
        self.id, self.model, self.find_stop = message_id, model, find_stop
        self.reader = ToolCallStream(tools) if tools is not None else None
        self.thinker = reasoning.stream() if reasoning is not None else None
        self.show_thinking = show_thinking
        self.blocks = 0  # content blocks opened so far
        self.text_open = False
        self.thinking: list[str] | None = None  # the open thinking block's text so far
        self.token_ids: list[int] = []
        self.reply: list[str] = []

    def start(self, chunk: GenerationChunk) -> str:
        usage = {"input_tokens": chunk.prompt_tokens, "output_tokens": 0}
        if chunk.cached_tokens:
            usage["cache_read_input_tokens"] = chunk.cached_tokens
        return event("message_start", {"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})

    def _open(self, block: dict[str, Any]) -> list[str]:
        out = [event("content_block_start", {"type": "content_block_start",
                                             "index": self.blocks, "content_block": block})]
        if self.blocks == 0:
            out.append(event("ping", {"type": "ping"}))
        self.blocks += 1
        return out

    def _close(self) -> str:
        return event("content_block_stop", {"type": "content_block_stop",
                                            "index": self.blocks - 1})

    def _text(self, text: str) -> list[str]:
        if not text:
            return []
        out = [] if self.text_open else self._open({"type": "text", "text": ""})
        self.text_open = True
        return out + [self._delta({"type": "text_delta", "text": text})]

    def _delta(self, delta: dict[str, Any]) -> str:
        return event("content_block_delta", {"type": "content_block_delta",
                                             "index": self.blocks - 1, "delta": delta})

    def _think(self, reasoning: str) -> list[str]:
        if not reasoning or not self.show_thinking:
            return []
        out = []
        if self.thinking is None:
            out, self.thinking = self._open({"type": "thinking", "thinking": "",
                                             "signature": ""}), []
        self.thinking.append(reasoning)
        return out + [self._delta({"type": "thinking_delta", "thinking": reasoning})]

    def _end_thinking(self) -> list[str]:
        """Close the thinking block, if one is open, with its signature."""
        if self.thinking is None:
            return []
        signature = thinking_signature("".join(self.thinking))
        self.thinking = None
        return [self._delta({"type": "signature_delta", "signature": signature}),
                self._close()]

    def _call(self, call: ToolCall) -> list[str]:
        out = self._open({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        out.append(self._delta({"type": "input_json_delta", "partial_json": call.arguments}))
        return out + [self._close()]

    def piece(self, chunk: GenerationChunk) -> list[str]:
        """The events one engine chunk sends (its reasoning, its text, and at the end any
        calls)."""
        self.token_ids.extend(chunk.token_ids)
        self.reply.append(chunk.text)
        reasoning, text, calls = split_piece(chunk, self.thinker, self.reader)
        out = self._think(reasoning)
        if text or chunk.finish_reason is not None:
            out += self._end_thinking()
        out += self._text(text)
        if chunk.finish_reason is None:
            return out
        if not self.text_open and not calls:
            out += self._open({"type": "text", "text": ""})
            self.text_open = True
        if self.text_open:
            out.append(self._close())
        for call in calls:
            out += self._call(call)
        return out + self._end(chunk, bool(calls))

    def _end(self, chunk: GenerationChunk, calls: bool) -> list[str]:
        finish = chunk.finish_reason or "stop"
        stop = self.find_stop(self.token_ids) if finish == "stop" and not calls else None
        return [event("message_delta", {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(finish, calls, stop),
                              "stop_sequence": stop},
                    "usage": {"input_tokens": chunk.prompt_tokens,
                              "output_tokens": chunk.completion_tokens}}),
                event("message_stop", {"type": "message_stop"})]

    async def run(self, submission: Submission, on_reply: OnReply | None
                  ) -> AsyncIterator[str]:
        started = False
        try:
            async for _, chunk in submission.chunks():
                if not started:
                    started = True
                    yield self.start(chunk)
                for line in self.piece(chunk):
                    yield line
            if on_reply is not None:
                on_reply("".join(self.reply))
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            yield error_event(exc)
