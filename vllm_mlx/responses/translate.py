"""A Responses request as the OpenAI chat request the shared chat service runs, and a chat
reply as Responses output items. No I/O.

:func:`input_items` turns ``input`` into stored items (a string is one user message; every
item gets an id and a status, string content becomes one ``input_text`` / ``output_text``
part). :func:`chat_messages` maps a conversation's items onto chat messages: ``instructions``
first as a system message; ``input_text`` / ``output_text`` / ``refusal`` parts to text;
``input_image`` to an ``image_url`` part (or, by ``file_id``, to the chat's ``input_file``
part, which the files API resolves); ``input_file`` to ``input_file``; ``function_call``
items to the ``tool_calls`` of one assistant message (joined to the assistant text just
before them); ``function_call_output`` items to ``tool`` messages; ``reasoning`` items are
not shown to the model. :func:`to_chat_request` adds tools (function tools only),
``tool_choice`` (``{"type": "function", "name"}`` becomes chat's named form), ``text.format``
(``json_schema`` / ``json_object``: constrained decoding), ``max_output_tokens`` and sampling
(with the chat's extensions, :data:`CHAT_EXTENSIONS`, given at top level or as ``extra_body``).

:func:`output_items` reads a finished chat message: its ``reasoning_content`` (when the chat
feature parsed one) as a ``reasoning`` item, its text as a ``message`` item, its calls as
``function_call`` items.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ..errors import APIError
from ..openai.protocol import ChatCompletionRequest
from .protocol import (
    FunctionCallOut,
    IncompleteDetails,
    InputTokensDetails,
    ItemStatus,
    MessageItem,
    OutputItem,
    OutputMessage,
    OutputTextOut,
    OutputTokensDetails,
    ReasoningOut,
    ReasoningText,
    ResponseObject,
    ResponsesRequest,
    TextFormatJsonObject,
    TextFormatJsonSchema,
    ToolChoiceFunction,
    Usage,
    new_id,
)

# the chat feature's sampling extensions (vLLM's), taken here too (the SDK's extra_body)
CHAT_EXTENSIONS = ("seed", "stop", "top_k", "min_p", "logit_bias", "repetition_penalty",
                   "presence_penalty", "frequency_penalty", "ignore_eos", "min_tokens")
# the Responses efforts on the three a chat template knows
_EFFORT = {"none": "low", "minimal": "low", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "high"}
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco",
              "reasoning": "rs"}


def _stored(item: BaseModel) -> dict[str, Any]:
    out = item.model_dump(by_alias=True, exclude_none=True, mode="json")
    out.setdefault("id", new_id(_ID_PREFIX[out["type"]]))
    if out["type"] != "reasoning":
        out.setdefault("status", "completed")
    if out["type"] == "message" and isinstance(out["content"], str):
        kind = "output_text" if out["role"] == "assistant" else "input_text"
        out["content"] = [{"type": kind, "text": out["content"]}]
    return out


def input_items(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's ``input`` as stored items (ids given where the client gave none)."""
    if isinstance(req.input, str):
        return [_stored(MessageItem(role="user", content=req.input))]
    return [_stored(item) for item in req.input]


def _part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image" and part.get("image_url") is not None:
        return {"type": "image_url", "image_url": {"url": part["image_url"]}}
    return {"type": "input_file", "file_id": part["file_id"]}  # an image or file by id


def _text(parts: Sequence[dict[str, Any]]) -> str:
    return "".join(p["text"] for p in map(_part, parts) if p["type"] == "text")


def _call(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["call_id"], "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]}}


def _add_call(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    """A call joins the assistant message just before it, or starts one."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(_call(item))
    else:
        messages.append({"role": "assistant", "content": "", "tool_calls": [_call(item)]})


def _output(item: dict[str, Any]) -> str | list[dict[str, Any]]:
    output = item["output"]
    return output if isinstance(output, str) else [_part(p) for p in output]


def chat_messages(instructions: str | None, items: Sequence[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """A conversation's stored items as chat messages (see the module)."""
    messages: list[dict[str, Any]] = (
        [{"role": "system", "content": instructions}] if instructions else [])
    for item in items:
        kind = item["type"]
        if kind == "message" and item["role"] == "assistant":
            messages.append({"role": "assistant", "content": _text(item["content"])})
        elif kind == "message":
            messages.append({"role": item["role"],
                             "content": [_part(p) for p in item["content"]]})
        elif kind == "function_call":
            _add_call(messages, item)
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _output(item)})
    return messages


def _tools(req: ResponsesRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if req.tools:
        out["tools"] = [{"type": "function", "function": {
            "name": t.name, "parameters": t.parameters or {"type": "object", "properties": {}},
            **({"description": t.description} if t.description else {})}} for t in req.tools]
    choice = req.tool_choice
    if isinstance(choice, ToolChoiceFunction):
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice is not None:
        out["tool_choice"] = choice
    if req.parallel_tool_calls is not None:
        out["parallel_tool_calls"] = req.parallel_tool_calls
    return out


def _response_format(req: ResponsesRequest) -> dict[str, Any]:
    fmt = req.text.format if req.text is not None else None
    if isinstance(fmt, TextFormatJsonSchema):
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": fmt.name, "schema": fmt.schema_, "strict": fmt.strict}}}
    if isinstance(fmt, TextFormatJsonObject):
        return {"response_format": {"type": "json_object"}}
    return {}


def _sampling(req: ResponsesRequest) -> dict[str, Any]:
    extensions = {k: v for k, v in (req.model_extra or {}).items() if k in CHAT_EXTENSIONS}
    out: dict[str, Any] = {"max_tokens": req.max_output_tokens, "temperature": req.temperature,
                           "top_p": req.top_p, "user": req.user, "stream": req.stream,
                           **extensions}
    if req.stream:
        out["stream_options"] = {"include_usage": True}
    if req.reasoning is not None and req.reasoning.effort is not None:
        out["reasoning_effort"] = _EFFORT[req.reasoning.effort]  # gpt-oss templates read it
    return out


def to_chat_request(req: ResponsesRequest, items: Sequence[dict[str, Any]], served: str
                    ) -> ChatCompletionRequest:
    """The chat request that answers the conversation ``items`` (history, then input)."""
    body: dict[str, Any] = {
        "model": req.model or served, "messages": chat_messages(req.instructions, items),
        **_tools(req), **_response_format(req), **_sampling(req)}
    if not body["messages"]:
        raise APIError(400, "the conversation is empty: give 'input'", param="input")
    return ChatCompletionRequest.checked(body)


def output_items(content: str | None, reasoning: str | None,
                 tool_calls: Sequence[dict[str, Any]] | None, incomplete: bool
                 ) -> list[FunctionCallOut | OutputMessage | ReasoningOut]:
    """A finished chat message as output items: reasoning, text, then calls. A reply with
    neither text nor calls is one empty message."""
    status: ItemStatus = "incomplete" if incomplete else "completed"
    out: list[FunctionCallOut | OutputMessage | ReasoningOut] = []
    if reasoning:
        out.append(ReasoningOut(content=[ReasoningText(text=reasoning)]))
    if content or not tool_calls:
        out.append(OutputMessage(status=status, content=[OutputTextOut(text=content or "")]))
    for call in tool_calls or []:
        function = call["function"]
        arguments = function.get("arguments")
        out.append(FunctionCallOut(
            call_id=call["id"], name=function["name"], status=status,
            arguments=arguments if isinstance(arguments, str) else json.dumps(arguments)))
    return out



def response_usage(usage: dict[str, Any] | None) -> Usage:
    """The chat feature's usage (``prompt_tokens``, ...) as the Responses API counts it."""
    usage = usage or {}
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    return Usage(input_tokens=prompt, output_tokens=completion,
                 total_tokens=prompt + completion,
                 input_tokens_details=InputTokensDetails(cached_tokens=cached or 0),
                 output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning or 0))


def finish_response(response: ResponseObject, output: Sequence[OutputItem], finish: str,
                    usage: dict[str, Any] | None) -> None:
    """Fill in a finished response: its output, status (``incomplete`` when
    ``max_output_tokens`` cut it) and usage."""
    response.output = list(output)
    response.completed_at = int(time.time())
    if finish == "length":
        response.status = "incomplete"
        response.incomplete_details = IncompleteDetails(reason="max_output_tokens")
    else:
        response.status = "completed"
    response.usage = response_usage(usage)
