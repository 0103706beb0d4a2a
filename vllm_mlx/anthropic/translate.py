"""An Anthropic Messages request as the OpenAI chat request the shared chat service runs.

:func:`to_chat_request` maps, with no I/O: ``system`` (a string or text blocks, joined by
newlines) to a system message; ``text`` blocks to text parts; ``image`` blocks to
``image_url`` parts (a ``base64`` source as a ``data:`` URL, a ``url`` source as given), so
images go through the same media fetching and :class:`~vllm_mlx.media.MediaPolicy` as chat;
an assistant's ``tool_use`` blocks to its ``tool_calls``; a user's ``tool_result`` blocks to
``tool`` messages placed before the rest of that user turn; ``thinking`` blocks are dropped
(the engine's chat messages carry no reasoning, so a template that shows earlier
reasoning, as Qwen3's does within a tool loop, does not see it). ``thinking`` enabled or
not becomes the template's ``enable_thinking`` switch, where it has one. ``tools`` become
function tools, ``tool_choice`` ``auto`` / ``any`` / ``tool`` / ``none``
becomes ``auto`` / ``required`` / the named function / ``none``. Any ``claude-*`` model
name stands for the served model. A request the chat side refuses is a 400 ``APIError``.
"""

from __future__ import annotations

import json
from typing import Any

from ..openai.protocol import ChatCompletionRequest
from .protocol import (
    CountTokensRequest,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)


def model_name(name: str, served: str) -> str:
    """Any ``claude-*`` name is the served model; others are checked by the chat side."""
    return served if name.lower().startswith("claude") else name


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    url = (source.url if source.type == "url"
           else f"data:{source.media_type};base64,{source.data}")
    return {"type": "image_url", "image_url": {"url": url}}


def _part(block: TextBlock | ImageBlock) -> dict[str, Any]:
    return {"type": "text", "text": block.text} if isinstance(block, TextBlock) \
        else _image_part(block)


def _tool_message(block: ToolResultBlock) -> dict[str, Any]:
    content = block.content
    parts: str | list[dict[str, Any]] = (
        content if isinstance(content, str) else [_part(p) for p in content or []])
    if block.is_error and isinstance(parts, str):
        parts = f"Error: {parts}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": parts}


def _call(block: ToolUseBlock) -> dict[str, Any]:
    return {"id": block.id, "type": "function",
            "function": {"name": block.name, "arguments": json.dumps(block.input)}}


def _messages(message: MessageParam) -> list[dict[str, Any]]:
    """One Anthropic message as one or more chat messages."""
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    tools, parts, calls = [], [], []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            tools.append(_tool_message(block))
        elif isinstance(block, ToolUseBlock):
            calls.append(_call(block))
        elif isinstance(block, (TextBlock, ImageBlock)):
            parts.append(_part(block))
    if message.role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        return [{"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}]
    return tools + ([{"role": "user", "content": parts}] if parts or not tools else [])


def _system(system: str | list[TextBlock] | None) -> list[dict[str, Any]]:
    if system is None:
        return []
    text = system if isinstance(system, str) else "\n".join(b.text for b in system)
    return [{"role": "system", "content": text}] if text else []


def _tool_choice(choice: ToolChoice | None) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def _tools(req: CountTokensRequest) -> dict[str, Any]:
    if not req.tools:
        return {"tool_choice": _tool_choice(req.tool_choice)} if req.tool_choice else {}
    tools = [{"type": "function", "function": {
        "name": t.name, "parameters": t.input_schema,
        **({"description": t.description} if t.description else {})}} for t in req.tools]
    out: dict[str, Any] = {"tools": tools, "tool_choice": _tool_choice(req.tool_choice)}
    if req.tool_choice is not None and req.tool_choice.disable_parallel_tool_use:
        out["parallel_tool_calls"] = False
    return out


def _sampling(req: MessagesRequest, max_tokens_limit: int) -> dict[str, Any]:
    return {"max_tokens": min(req.max_tokens, max_tokens_limit),  # agents ask for a lot
            "temperature": req.temperature, "top_p": req.top_p, "top_k": req.top_k,
            "stop": req.stop_sequences or None, "stream": req.stream}


def to_chat_request(req: CountTokensRequest, served: str, max_tokens_limit: int,
                    thinking_switch: bool = False) -> ChatCompletionRequest:
    """The chat request that runs ``req`` (a count-only request: one token at most);
    ``thinking_switch``: the model's template reads ``enable_thinking``."""
    messages = _system(req.system) + [m for msg in req.messages for m in _messages(msg)]
    body: dict[str, Any] = {"model": model_name(req.model, served), "messages": messages,
                            **_tools(req)}
    if thinking_switch:
        body["chat_template_kwargs"] = {"enable_thinking": req.thinks}
    body |= (_sampling(req, max_tokens_limit) if isinstance(req, MessagesRequest)
             else {"max_tokens": 1})
    return ChatCompletionRequest.checked(body)
