"""A request's tools, and its replies read for calls in the model's format.

Framework-free. The chat template shows the model the request's ``tools`` (or, where it
cannot, :mod:`.prompted_tools` does); this module reads the calls back in the model's
:class:`~.tool_formats.ToolFormat` (Hermes / Qwen unless the template or
``--tool-call-parser`` says otherwise) and can force them:

- :class:`ToolSet` checks ``tools`` / ``tool_choice`` (a bad one is an :class:`APIError` 400)
  and knows which functions a reply may call. Its JSON Schema checks cost about 1 ms a
  property: build it off the event loop (:class:`.validation.OffLoop`), on tools already
  bounded by :func:`.validation.check_schema_size`; each distinct schema is checked once.
  ``tool_choice`` may name a function as Chat Completions does (``{"type": "function",
  "function": {"name"}}``) or as the Responses API does (``{"type": "function", "name"}``).
- :meth:`ToolSet.split` separates a finished reply into its text and its calls. A block
  that does not parse, or names a function the request did not offer, stays text; so does
  a call cut off by ``max_tokens`` before its name was complete (output is never lost).
- :class:`ToolCallStream` does the same while a reply streams: it releases at once the
  text that cannot be the start of a call and holds the rest until the reply ends.
- :meth:`ToolSet.grammar` is the llguidance (Lark) grammar of exactly one call, for
  ``tool_choice`` ``"required"`` or a named function; the arguments follow the
  function's JSON schema. :meth:`ToolSet.call_or_json_grammar` lets an ``auto`` reply
  either call (one or more calls) or answer with the JSON of a ``response_format``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from ..errors import APIError, excerpt
from .tool_formats import DEFAULT, FORMATS, ToolCall, ToolFormat, lark_literal
from .tool_formats.base import json_rule, partial_tail

__all__ = ["MAX_TOOLS", "ToolCall", "ToolCallStream", "ToolSet", "lark_literal"]

MAX_TOOLS = 128  # OpenAI's limit
SCHEMAS_KEPT = 512  # checked tool schemas remembered (agents send the same tools each turn)
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _bad(message: str, param: str) -> APIError:
    return APIError(400, message, param=param, code="invalid_tools")


def _function_of(tool: Any, index: int) -> dict[str, Any]:
    if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
        raise _bad("each tool must be {'type': 'function', 'function': {...}}",
                   f"tools[{index}]")
    function = tool.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _bad("a function's 'name' must be 1 to 64 letters, digits, '_' or '-'",
                   f"tools[{index}].function.name")
    assert isinstance(function, Mapping)
    parameters = function.get("parameters", {"type": "object"})
    where = f"tools[{index}].function.parameters"
    if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
        raise _bad("a function's 'parameters' must be a JSON schema of type 'object'", where)
    _check_schema(parameters, where)
    return {**function, "parameters": {"type": "object", **parameters}}


def _check_schema(parameters: Mapping[str, Any], where: str) -> None:
    """JSON Schema meta-validation (about 1 ms a property), once per distinct schema."""
    try:
        key = json.dumps(parameters, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        raise _bad("a function's 'parameters' is not a JSON object", where) from None
    error = _schema_error(key)
    if error is not None:
        raise _bad(f"a function's 'parameters' is not a valid JSON schema: {error}", where)


@functools.lru_cache(maxsize=SCHEMAS_KEPT)
def _schema_error(key: str) -> str | None:
    schema = json.loads(key)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        return excerpt(exc.message, 300)[1:-1]  # it may quote the schema
    except RecursionError:  # under MAX_SCHEMA_DEPTH, a $ref cycle can still do it
        return "it is nested or refers to itself too deeply"
    return None


def _functions_of(tools: list[Any]) -> tuple[dict[str, Any], ...]:
    if len(tools) > MAX_TOOLS:
        raise _bad(f"at most {MAX_TOOLS} tools, not {len(tools)}", "tools")
    functions, seen = [], set()
    for i, tool in enumerate(tools):
        function = _function_of(tool, i)
        if function["name"] in seen:
            raise _bad(f"two tools are named {function['name']!r}", f"tools[{i}].function.name")
        seen.add(function["name"])
        functions.append(function)
    return tuple(functions)


def _chosen_name(choice: Any, names: Sequence[str]) -> str | None:
    """The function ``tool_choice`` names, if it names one."""
    if not isinstance(choice, Mapping):
        return None
    if choice.get("type", "function") != "function":
        raise _bad("a tool_choice object must be {'type': 'function', 'function': "
                   "{'name': ...}}", "tool_choice")
    function = choice.get("function", choice)  # Responses API: the name is at the top
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or name not in names:
        raise _bad(f"tool_choice names a function the request does not offer ({excerpt(name)}); "
                   f"offered: {', '.join(names) or 'none'}", "tool_choice")
    return name


@dataclass(frozen=True)
class ToolSet:
    """A request's tools and what ``tool_choice`` asks of them."""

    tools: tuple[dict[str, Any], ...]  # as given, for the chat template
    functions: tuple[dict[str, Any], ...]
    mode: str  # "none" | "auto" | "required" | "named"
    named: str | None = None
    parallel: bool = True  # False: a reply makes at most one call (parallel_tool_calls)
    format: ToolFormat = FORMATS[DEFAULT]

    @classmethod
    def of(cls, tools: list[Any] | None, choice: Any, parallel: bool = True,
           fmt: ToolFormat | None = None) -> ToolSet | None:
        if not tools:
            if choice is not None:
                raise _bad("tool_choice is only allowed when tools are given", "tool_choice")
            return None
        functions = _functions_of(tools)
        names = [f["name"] for f in functions]
        fmt = fmt or FORMATS[DEFAULT]
        if choice is None or choice in ("none", "auto", "required"):
            return cls(tuple(tools), functions, choice or "auto", parallel=parallel,
                       format=fmt)
        if isinstance(choice, str):
            raise _bad("tool_choice must be 'none', 'auto', 'required' or "
                       "{'type': 'function', 'function': {'name': ...}}", "tool_choice")
        return cls(tuple(tools), functions, "named", _chosen_name(choice, names), parallel,
                   fmt)

    @property
    def parses_calls(self) -> bool:
        return self.mode != "none"

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "named")

    def _callable(self) -> dict[str, Any]:
        """name -> parameters of the functions a reply may call."""
        return {f["name"]: f["parameters"] for f in self.functions
                if self.named in (None, f["name"])}

    def split(self, text: str, cut_short: bool = False) -> tuple[str, list[ToolCall]]:
        """The reply's text outside its calls (stripped when there are calls), and the calls.

        ``cut_short`` (the reply hit ``max_tokens``): a last call left open is returned as
        far as it got, arguments unfinished, as OpenAI returns a truncated call; its markup
        never reaches the text. Cut before its name was complete, it is returned as text."""
        text, calls = self.format.split(text, self._callable(), cut_short)
        return text, calls if self.parallel else calls[:1]

    def grammar(self, tokenizer: Any) -> str:
        """Exactly one call of an offered function (of the named one, if named)."""
        expression, rules = self.format.calls_grammar(self._callable(), False, tokenizer)
        return "\n".join([f"start: {expression}", *rules])

    def call_or_json_grammar(self, tokenizer: Any, schema: Mapping[str, Any]) -> str:
        """``tool_choice`` auto with a JSON ``response_format``: calls (one, or more when
        parallel calls are allowed), or a JSON value of ``schema`` as the answer."""
        merged = self.format.call_or_json(self._callable(), schema)
        if merged is not None:
            return "\n".join([f"start: {merged[0]}", *merged[1]])
        expression, rules = self.format.calls_grammar(self._callable(), self.parallel,
                                                      tokenizer)
        return "\n".join([f"start: {expression} | answer", f"answer: {json_rule(schema)}",
                          *rules])


class ToolCallStream:
    """One streamed choice: text is released as soon as it cannot be part of a call."""

    def __init__(self, tools: ToolSet) -> None:
        self.tools = tools
        self._markers = tools.format.markers
        self._held = ""
        self._in_call = False
        self._passing = False  # a format whose calls open the reply saw other text first

    def feed(self, text: str) -> str:
        """The part of the text so far that can be sent now."""
        self._held += text
        if self._in_call:
            return ""
        if self._passing:
            out, self._held = self._held, ""
            return out
        if self.tools.format.at_start_only:
            return self._feed_at_start()
        starts = [i for i in (self._held.find(m) for m in self._markers) if i != -1]
        if starts:
            self._in_call = True
            out, self._held = self._held[:min(starts)], self._held[min(starts):]
            return out
        cut = len(self._held) - partial_tail(self._held, self._markers)
        out, self._held = self._held[:cut], self._held[cut:]
        return out

    def _feed_at_start(self) -> str:
        head = self._held.lstrip()
        if not head or any(m.startswith(head) for m in self._markers):
            return ""
        if any(head.startswith(m) for m in self._markers):
            self._in_call = True
            return ""
        self._passing = True
        out, self._held = self._held, ""
        return out

    def finish(self, cut_short: bool = False) -> tuple[str, list[ToolCall]]:
        """The text still held, to send, and the calls the reply made."""
        text, calls = self.tools.split(self._held, cut_short)
        self._held = ""
        return text, calls
