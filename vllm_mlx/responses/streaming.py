"""A streamed response as the Responses API's typed server-sent events.

Each event is ``event: TYPE\\ndata: JSON\\n\\n``, the JSON carrying ``type`` and a
``sequence_number`` counting from 0. :class:`ResponseEvents` reads the chat feature's own
stream (its ``chat.completion.chunk`` payloads: text, ``reasoning_content`` when the chat
feature parses reasoning, tool calls, the finish reason and the usage), so this API streams
whatever the chat feature reads out of a reply, and sends:

``response.created``, ``response.in_progress``; per output item ``response.output_item.added``
then, for reasoning and text, ``response.content_part.added``, ``response.reasoning_text.delta``
/ ``response.output_text.delta``\\ s, ``...text.done``, ``response.content_part.done``; for a
call ``response.function_call_arguments.delta`` / ``.done``; then
``response.output_item.done``. The end is ``response.completed`` (``response.incomplete``
when ``max_output_tokens`` cut it), after the response is stored. A failure after the stream
began is an ``error`` event, then ``response.failed``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..errors import APIError, to_api_error
from ..openai.serving_common import sse
from .protocol import (
    FunctionCallOut,
    ItemStatus,
    OutputMessage,
    OutputTextOut,
    ReasoningOut,
    ReasoningText,
    ResponseError,
    ResponseObject,
)
from .translate import finish_response

Keep = Callable[[ResponseObject], Awaitable[None]]
TextItem = OutputMessage | ReasoningOut


def chat_payload(line: str) -> dict[str, Any] | None:
    """One chat SSE event's JSON (None for ``[DONE]``); an in-band error raises it."""
    data = line.strip().removeprefix("data: ")
    if data == "[DONE]":
        return None
    payload: dict[str, Any] = json.loads(data)
    if "error" in payload:
        error = payload["error"]
        raise APIError(500 if error.get("type") == "server_error" else 400,
                       error.get("message", "generation failed"), param=error.get("param"),
                       code=error.get("code"), type=error.get("type"))
    return payload


class ResponseEvents:
    """The events of one streamed response (see the module)."""

    def __init__(self, response: ResponseObject, keep: Keep) -> None:
        self.response, self.keep = response, keep
        self.sequence = 0
        self.output: list[TextItem | FunctionCallOut] = []
        self.open: TextItem | None = None
        self.text = ""
        self.calls: dict[int, FunctionCallOut] = {}
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None

    def event(self, kind: str, **data: Any) -> str:
        body = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return sse(body, kind)

    def _snapshot(self, kind: str) -> str:
        return self.event(kind, response=self.response.model_dump(mode="json"))

    def _added(self, item: TextItem | FunctionCallOut) -> str:
        self.output.append(item)
        return self.event("response.output_item.added", output_index=len(self.output) - 1,
                          item=item.model_dump(mode="json"))

    def _part(self, item: TextItem, text: str) -> dict[str, Any]:
        part = (ReasoningText(text=text) if isinstance(item, ReasoningOut)
                else OutputTextOut(text=text))
        return part.model_dump(mode="json")

    def _open_text(self, reasoning: bool) -> list[str]:
        if self.open is not None and isinstance(self.open, ReasoningOut) == reasoning:
            return []
        out = self._close_text()
        item: TextItem = (ReasoningOut(status="in_progress") if reasoning
                          else OutputMessage(status="in_progress"))
        out.append(self._added(item))
        self.open, self.text = item, ""
        out.append(self.event("response.content_part.added", item_id=item.id,
                              output_index=len(self.output) - 1, content_index=0,
                              part=self._part(item, "")))
        return out

    def _text(self, text: str, reasoning: bool) -> list[str]:
        if not text:
            return []
        out = self._open_text(reasoning)
        assert self.open is not None
        self.text += text
        where = {"item_id": self.open.id, "output_index": len(self.output) - 1,
                 "content_index": 0}
        if reasoning:
            return out + [self.event("response.reasoning_text.delta", delta=text, **where)]
        return out + [self.event("response.output_text.delta", delta=text, logprobs=[],
                                 **where)]

    def _close_text(self) -> list[str]:
        item, text = self.open, self.text
        if item is None:
            return []
        self.open = None
        index = self.output.index(item)
        where = {"item_id": item.id, "output_index": index, "content_index": 0}
        if isinstance(item, ReasoningOut):
            done = self.event("response.reasoning_text.done", text=text, **where)
            item.content, item.status = [ReasoningText(text=text)], "completed"
        else:
            done = self.event("response.output_text.done", text=text, logprobs=[], **where)
            item.content = [OutputTextOut(text=text)]
            item.status = "incomplete" if self.finish == "length" else "completed"
        return [done, self.event("response.content_part.done", part=self._part(item, text),
                                 **where),
                self.event("response.output_item.done", output_index=index,
                           item=item.model_dump(mode="json"))]

    def _call(self, call: dict[str, Any]) -> list[str]:
        """A chat tool-call delta: a new call opens an item; argument text is a delta."""
        out: list[str] = []
        index, function = call.get("index", 0), call.get("function") or {}
        if index not in self.calls:
            out += self._close_text()
            self.calls[index] = FunctionCallOut(call_id=call["id"], name=function["name"],
                                                arguments="", status="in_progress")
            out.append(self._added(self.calls[index]))
        item, fragment = self.calls[index], function.get("arguments")
        if isinstance(fragment, str) and fragment:
            item.arguments += fragment
            out.append(self.event("response.function_call_arguments.delta", delta=fragment,
                                  item_id=item.id, output_index=self.output.index(item)))
        return out

    def piece(self, chunk: dict[str, Any]) -> list[str]:
        """The events of one chat chunk (of its first choice: ``n`` is 1 here)."""
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        out: list[str] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            out += self._text(delta.get("reasoning_content") or "", reasoning=True)
            out += self._text(delta.get("content") or "", reasoning=False)
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
            self.finish = choice.get("finish_reason") or self.finish
        return out

    async def _end(self) -> list[str]:
        out = self._close_text()
        if not self.output:
            out += self._open_text(reasoning=False) + self._close_text()
        status: ItemStatus = "incomplete" if self.finish == "length" else "completed"
        for item in self.calls.values():
            item.status = status
            index = self.output.index(item)
            out += [self.event("response.function_call_arguments.done", item_id=item.id,
                               output_index=index, arguments=item.arguments),
                    self.event("response.output_item.done", output_index=index,
                               item=item.model_dump(mode="json"))]
        finish_response(self.response, self.output, self.finish or "stop", self.usage)
        await self.keep(self.response)
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return out + [self._snapshot(kind)]

    def _failed(self, exc: BaseException) -> list[str]:
        error = to_api_error(exc)
        code = error.code or ("server_error" if error.status >= 500 else "invalid_request")
        self.response.status, self.response.completed_at = "failed", int(time.time())
        self.response.error = ResponseError(code=code, message=error.message)
        return [self.event("error", code=code, message=error.message, param=error.param),
                self._snapshot("response.failed")]

    async def run(self, chat_lines: AsyncIterator[str]) -> AsyncIterator[str]:
        try:
            yield self._snapshot("response.created")
            yield self._snapshot("response.in_progress")
            async for line in chat_lines:
                chunk = chat_payload(line)
                if chunk is None:
                    break
                for event in self.piece(chunk):
                    yield event
            for event in await self._end():
                yield event
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            for event in self._failed(exc):
                yield event
        finally:  # a client gone: closing the chat stream cancels the generation at once
            close = getattr(chat_lines, "aclose", None)
            if close is not None:
                await close()
