"""Tools for models whose chat template cannot show them, and the legacy ``functions``.

:func:`prompted_messages` rewrites a conversation for such a model (many vision models'
templates ignore ``tools``): a system message lists the functions' schemas and shows how
to call one in the chosen :class:`~.tool_formats.ToolFormat`; earlier calls become the
assistant's text in that format, and tool results become user turns (``Result of name:``),
adjacent user turns joined, since such templates often insist that roles alternate. The
replies are read for calls as usual.

:func:`legacy_functions` maps the deprecated ``functions`` / ``function_call`` request
fields onto ``tools`` / ``tool_choice``, an assistant's ``function_call`` onto a
``tool_calls`` entry and a ``function`` message onto the ``tool`` message answering it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..content import MessageRef, TextRef
from ..engine.chat_format import shows_tools, template_text
from ..errors import APIError
from .tool_formats import ToolFormat, format_for

LEGACY_CALL_ID = "call_legacy_{}"


@dataclass(frozen=True)
class ToolProfile:
    """How a model takes tools: its call format, and whether its chat template shows them
    (``"template"``) or :func:`prompted_messages` must (``"prompted"``)."""

    format: ToolFormat
    prompted: bool

    @property
    def how(self) -> str:
        return "prompted" if self.prompted else "template"


def known_tool_profile(loaded: Any, parser: str | None) -> ToolProfile | None:
    """The model's :class:`ToolProfile` if :func:`tool_profile` has worked it out (a
    quick look, fine on the event loop)."""
    return loaded.memo.get(("tool_profile", parser))


def tool_profile(loaded: Any, parser: str | None) -> ToolProfile:
    """The model's :class:`ToolProfile` (``parser``: ``--tool-call-parser``), worked out
    once per model (a probe render of its template). Blocking: call off the event loop."""
    known = known_tool_profile(loaded, parser)
    if known is not None:
        return known
    try:
        fmt = format_for(template_text(loaded), parser)
    except ValueError as exc:
        raise APIError(500, str(exc)) from None
    profile = loaded.memo[("tool_profile", parser)] = ToolProfile(fmt, not shows_tools(loaded))
    return profile


def prompted_messages(messages: Sequence[MessageRef], tools: Sequence[Mapping[str, Any]],
                      fmt: ToolFormat) -> tuple[MessageRef, ...]:
    """``messages`` with the tools taught in a system message (see the module)."""
    instruction = TextRef(fmt.instructions([t.get("function", t) for t in tools]))
    names: dict[str | None, str] = {}
    out: list[MessageRef] = []
    for message in messages:
        if message.role == "assistant" and message.tool_calls:
            names.update({c.get("id"): c["function"]["name"] for c in message.tool_calls})
            written = "\n".join(fmt.example(c["function"]["name"], _object(c["function"]))
                                for c in message.tool_calls)
            message = MessageRef("assistant", (*message.parts, TextRef(written)))
        elif message.role == "tool":
            head = TextRef(f"Result of {names.get(message.tool_call_id, 'the call')}:\n")
            message = MessageRef("user", (head, *message.parts))
        if out and out[-1].role == message.role == "user":
            message = MessageRef("user", (*out.pop().parts, TextRef("\n\n"), *message.parts))
        out.append(message)
    if out and out[0].role == "system":
        return (MessageRef("system", (*out[0].parts, TextRef("\n\n"), instruction)),
                *out[1:])
    return (MessageRef("system", (instruction,)), *out)


def _object(function: Mapping[str, Any]) -> Mapping[str, Any]:
    arguments = function.get("arguments")
    return arguments if isinstance(arguments, Mapping) else {"arguments": arguments}


def legacy_functions(functions: list[Any] | None, function_call: Any
                     ) -> tuple[list[Any] | None, Any]:
    """``(tools, tool_choice)`` for the legacy fields (``functions`` items are the
    functions themselves; ``function_call`` is "none", "auto" or ``{"name"}``)."""
    tools = [{"type": "function", "function": f} for f in functions] if functions else None
    if isinstance(function_call, Mapping):
        return tools, {"type": "function", "function": {"name": function_call.get("name")}}
    return tools, function_call


def legacy_messages(messages: list[Any]) -> list[Any]:
    """Assistant ``function_call`` s as ``tool_calls``, ``function`` messages as the
    ``tool`` messages answering them (each gets the id of the last call before it)."""
    if not any(isinstance(m, Mapping) and (m.get("role") == "function" or m.get(
            "function_call")) for m in messages):
        return messages
    out, last_id = [], None
    for i, message in enumerate(messages):
        if isinstance(message, Mapping) and isinstance(message.get("function_call"),
                                                       Mapping):
            call = message["function_call"]
            last_id = LEGACY_CALL_ID.format(i)
            arguments = call.get("arguments", "{}")
            message = {**{k: v for k, v in message.items() if k != "function_call"},
                       "tool_calls": [{"id": last_id, "type": "function", "function": {
                           "name": call.get("name"), "arguments": arguments if isinstance(
                               arguments, str) else json.dumps(arguments)}}]}
        elif isinstance(message, Mapping) and message.get("role") == "function":
            message = {"role": "tool", "tool_call_id": last_id,
                       "content": message.get("content")}
        out.append(message)
    return out
