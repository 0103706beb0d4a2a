"""Function calling in the Hermes / Qwen form: ``<tool_call>{"name", "arguments"}</tool_call>``.

Framework-free. The chat template shows the model the request's ``tools``; this module
reads its calls back and can force one:

- :class:`ToolSet` checks ``tools`` / ``tool_choice`` (a bad one is an :class:`APIError` 400)
  and knows which functions a reply may call. Its JSON Schema checks cost about 1 ms a
  property: build it off the event loop (:class:`.validation.OffLoop`), on tools already
  bounded by :func:`.validation.check_schema_size`; each distinct schema is checked once.
- :meth:`ToolSet.split` separates a finished reply into its text and its calls. A block
  that does not parse, or names a function the request did not offer, stays text.
- :class:`ToolCallStream` does the same while a reply streams: it releases at once the
  text that cannot be the start of a call and holds the rest until the reply ends.
- :meth:`ToolSet.grammar` is the llguidance (Lark) grammar of exactly one call, for
  ``tool_choice`` ``"required"`` or a named function; the arguments follow the
  function's JSON schema.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from ..errors import APIError, excerpt

OPEN, CLOSE = "<tool_call>", "</tool_call>"
MAX_TOOLS = 128  # OpenAI's limit
SCHEMAS_KEPT = 512  # checked tool schemas remembered (agents send the same tools each turn)
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_PARTIAL_NAME = re.compile(r'^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_PARTIAL_ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:\s*')


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as text

    def to_openai(self, index: int | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"id": self.id, "type": "function",
                                "function": {"name": self.name, "arguments": self.arguments}}
        return call if index is None else {"index": index, **call}


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
    function = choice.get("function")
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

    @classmethod
    def of(cls, tools: list[Any] | None, choice: Any, parallel: bool = True
           ) -> ToolSet | None:
        if not tools:
            if choice is not None:
                raise _bad("tool_choice is only allowed when tools are given", "tool_choice")
            return None
        functions = _functions_of(tools)
        names = [f["name"] for f in functions]
        if choice is None or choice in ("none", "auto", "required"):
            return cls(tuple(tools), functions, choice or "auto", parallel=parallel)
        if isinstance(choice, str):
            raise _bad("tool_choice must be 'none', 'auto', 'required' or "
                       "{'type': 'function', 'function': {'name': ...}}", "tool_choice")
        return cls(tuple(tools), functions, "named", _chosen_name(choice, names), parallel)

    @property
    def parses_calls(self) -> bool:
        return self.mode != "none"

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "named")

    def _callable(self) -> list[dict[str, Any]]:
        return [f for f in self.functions if self.named in (None, f["name"])]

    def split(self, text: str, cut_short: bool = False) -> tuple[str, list[ToolCall]]:
        """The reply's text outside its calls (stripped when there are calls), and the calls.

        ``cut_short`` (the reply hit ``max_tokens``): a last call left open is returned as
        far as it got, arguments unfinished, as OpenAI returns a truncated call; its markup
        never reaches the text."""
        names = {f["name"] for f in self._callable()}
        kept, calls, pos = [], [], 0
        while (start := text.find(OPEN, pos)) != -1:
            end = text.find(CLOSE, start)
            stop = len(text) if end == -1 else end + len(CLOSE)
            body = text[start + len(OPEN): end if end != -1 else len(text)]
            call = _parse_call(body, names)
            if call is None and end == -1 and cut_short:
                call = _partial_call(body, names)
                kept.append(text[pos:start])
                calls.extend([call] if call else [])
                return "".join(kept).strip(), calls if self.parallel else calls[:1]
            kept.append(text[pos:start] if call else text[pos:stop])
            if call:
                calls.append(call)
            pos = stop
        kept.append(text[pos:])
        if not calls:
            return text, []
        return "".join(kept).strip(), calls if self.parallel else calls[:1]

    def grammar(self, tokenizer: Any) -> str:
        """Exactly one call of an offered function (of the named one, if named)."""
        opening, closing = lark_literal(OPEN, tokenizer), lark_literal(CLOSE, tokenizer)
        rules, alternatives = [], []
        for i, function in enumerate(self._callable()):
            head = json.dumps(f'\n{{"name": {json.dumps(function["name"])}, "arguments": ')
            # compact JSON: with free whitespace a weak model can pad until max_tokens
            schema = {**(function.get("parameters") or {"type": "object"}),
                      "x-guidance": {"whitespace_flexible": False}}
            rules.append(f'call_{i}: {opening} {head} args_{i} "}}\\n" {closing}')
            rules.append(f"args_{i}: %json {json.dumps(schema)}")
            alternatives.append(f"call_{i}")
        return "\n".join([f"start: {' | '.join(alternatives)}", *rules])


def lark_literal(text: str, tokenizer: Any) -> str:
    """``text`` in a Lark grammar: as its token where the vocabulary has it as one (a
    special token cannot be spelled out in characters), else as a string."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return f"<[{ids[0]}]>" if len(ids) == 1 else json.dumps(text)


def _parse_call(body: str, names: set[str]) -> ToolCall | None:
    try:
        value = json.loads(body.strip())
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", value["name"],
                    json.dumps(arguments, ensure_ascii=False))


def _partial_call(body: str, names: set[str]) -> ToolCall | None:
    """A call cut off by ``max_tokens``: its name, if complete, and its arguments so far."""
    name = _PARTIAL_NAME.match(body)
    if name is None or name.group(1) not in names:
        return None
    arguments = _PARTIAL_ARGUMENTS.search(body, name.end())
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", name.group(1),
                    body[arguments.end():] if arguments else "")


def _held_back(text: str) -> int:
    """How many trailing characters of ``text`` could begin ``<tool_call>``."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


class ToolCallStream:
    """One streamed choice: text is released as soon as it cannot be part of a call."""

    def __init__(self, tools: ToolSet) -> None:
        self.tools = tools
        self._held = ""
        self._in_call = False

    def feed(self, text: str) -> str:
        """The part of the text so far that can be sent now."""
        self._held += text
        if self._in_call:
            return ""
        start = self._held.find(OPEN)
        if start != -1:
            self._in_call = True
            out, self._held = self._held[:start], self._held[start:]
            return out
        cut = len(self._held) - _held_back(self._held)
        out, self._held = self._held[:cut], self._held[cut:]
        return out

    def finish(self, cut_short: bool = False) -> tuple[str, list[ToolCall]]:
        """The text still held, to send, and the calls the reply made."""
        text, calls = self.tools.split(self._held, cut_short)
        self._held = ""
        return text, calls
