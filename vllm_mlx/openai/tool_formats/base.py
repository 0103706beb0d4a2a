"""What every tool-call format shares: the call type, the format interface, the block walk.

A :class:`ToolFormat` knows one family's way of writing calls:

- ``markers``: strings that open a call; streamed text is released until one appears (and
  held while its tail may still become one). ``at_start_only``: calls only open the reply
  (Llama's bare JSON), so any other first character releases the whole reply.
- :meth:`ToolFormat.split`: a finished reply's text and calls. A call that does not parse,
  or names a function not offered, stays text. ``cut_short`` (``max_tokens`` hit): a last
  call left open comes back as far as it got when its name is complete, else as text.
- :meth:`ToolFormat.calls_grammar`: the llguidance (Lark) rules of a call, or of one or
  more calls, in the format (``start`` is left to the caller).
- :meth:`ToolFormat.instructions`: a system prompt that teaches the format, for models
  whose chat template cannot show tools.
- ``keeps_special_tokens``: its markers are special tokens, so replies must keep them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Functions = Mapping[str, Mapping[str, Any]]  # name -> parameters (a JSON schema)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as text (unfinished when the reply was cut short)

    def to_legacy(self) -> dict[str, str]:
        """The call as a legacy ``function_call``."""
        return {"name": self.name, "arguments": self.arguments}

    def to_openai(self, index: int | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"id": self.id, "type": "function",
                                "function": {"name": self.name, "arguments": self.arguments}}
        return call if index is None else {"index": index, **call}


def new_call(name: str, arguments: Any) -> ToolCall | None:
    """A call with arguments given as an object or its JSON text; None if they are not."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", name,
                    json.dumps(arguments, ensure_ascii=False))


def cut_call(name: str, arguments_so_far: str) -> ToolCall:
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", name, arguments_so_far)


def lark_literal(text: str, tokenizer: Any) -> str:
    """``text`` in a Lark grammar: as its token where the vocabulary has it as one (a
    special token cannot be spelled out in characters), else as a string."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return f"<[{ids[0]}]>" if len(ids) == 1 else json.dumps(text)


def json_rule(schema: Mapping[str, Any]) -> str:
    """A Lark ``%json`` value of ``schema``, compact: with free whitespace a weak model can
    pad until ``max_tokens``."""
    return "%json " + json.dumps({**schema, "x-guidance": {"whitespace_flexible": False}})


def decode_json(text: str) -> Any:
    """A JSON value, or the text itself when it is not one (a bare string argument)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def schema_type(schema: Mapping[str, Any], key: str) -> Any:
    properties = schema.get("properties")
    spec = properties.get(key) if isinstance(properties, Mapping) else None
    return spec.get("type") if isinstance(spec, Mapping) else None


def typed_value(text: str, schema: Mapping[str, Any], key: str) -> Any:
    """A key/value format's raw value: kept as text for a string parameter, else JSON
    where it parses (numbers, booleans, objects)."""
    kind = schema_type(schema, key)
    if kind == "string" or (isinstance(kind, list) and "string" in kind
                            and text.strip()[:1] not in ('{', '[')):
        return text
    return decode_json(text.strip())


def partial_tail(text: str, markers: Sequence[str]) -> int:
    """How many characters at the end of ``text`` may begin one of ``markers`` (held back
    by a stream until the next piece tells whether a marker opens there)."""
    longest = max((len(m) for m in markers), default=1)
    firsts = {m[0] for m in markers if m}
    for start in range(max(len(text) - longest + 1, 0), len(text)):  # the longest tail first
        if text[start] in firsts and any(m.startswith(text[start:]) for m in markers):
            return len(text) - start
    return 0


class ToolFormat:
    """One family's call syntax (see the module). Subclasses set the class attributes."""

    name: str = ""
    markers: tuple[str, ...] = ()
    at_start_only: bool = False
    keeps_special_tokens: bool = False

    def detect(self, template: str) -> bool:
        raise NotImplementedError

    def for_template(self, template: str) -> ToolFormat:
        """This format set for ``template`` (formats with variants override it)."""
        return self

    def split(self, text: str, functions: Functions, cut_short: bool = False
              ) -> tuple[str, list[ToolCall]]:
        raise NotImplementedError

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        """Lark rules defining ``rule``: one call of ``name``."""
        raise NotImplementedError

    def sequence(self, call: str, many: bool, tokenizer: Any) -> str:
        """A Lark expression: ``call`` once, or once and more (``many``)."""
        return f"{call} (\"\\n\" {call})*" if many else call

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        """A call written in the format (for instructions and earlier turns)."""
        raise NotImplementedError

    def calls_grammar(self, functions: Functions, many: bool, tokenizer: Any
                      ) -> tuple[str, list[str]]:
        """``(expression, rules)``: one call (or more, ``many``) of one of ``functions``."""
        rules, names = [], []
        for i, (name, schema) in enumerate(functions.items()):
            rules += self.call_rules(name, schema, f"call_{i}", tokenizer)
            names.append(f"call_{i}")
        rules.append(f"tool_call: {' | '.join(names)}")
        return self.sequence("tool_call", many, tokenizer), rules

    def call_or_json(self, functions: Functions, schema: Mapping[str, Any]
                     ) -> tuple[str, list[str]] | None:
        """``(expression, rules)`` of one call or a JSON value of ``schema``, for a format
        whose calls are JSON themselves (two JSON grammars side by side would conflict);
        None: the caller puts the calls and the value side by side."""
        return None

    def instructions(self, tools: Sequence[Mapping[str, Any]]) -> str:
        specs = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        sample = self.example("function_name", {"argument": "value"})
        return ("You can call functions. Their JSON schemas:\n" + specs + "\n\nTo call one, "
                f"answer with nothing but the call, written exactly like this:\n{sample}\n"
                "Use only the functions listed and arguments that follow their schemas. "
                "Without a call, answer normally.")


class BlockFormat(ToolFormat):
    """Calls written as ``open body close`` blocks, each parsed by :meth:`parse_body`."""

    open: str = ""
    close: str = ""

    @property
    def markers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.open,)

    def parse_body(self, body: str, functions: Functions) -> list[ToolCall] | None:
        raise NotImplementedError

    def partial_body(self, body: str, functions: Functions) -> ToolCall | None:
        """A call cut off inside its body: its name if complete, its arguments so far."""
        return None

    def split(self, text: str, functions: Functions, cut_short: bool = False
              ) -> tuple[str, list[ToolCall]]:
        kept: list[str] = []
        calls: list[ToolCall] = []
        pos = 0
        while (start := text.find(self.open, pos)) != -1:
            end = text.find(self.close, start + len(self.open))
            body_end = len(text) if end == -1 else end
            stop = len(text) if end == -1 else end + len(self.close)
            body = text[start + len(self.open): body_end]
            found = self.parse_body(body, functions)
            if not found and end == -1 and cut_short:
                partial = self.partial_body(body, functions)
                found = [partial] if partial else None
            kept.append(text[pos:start] if found else text[pos:stop])
            calls.extend(found or [])
            pos = stop
        kept.append(text[pos:])
        return ("".join(kept).strip(), calls) if calls else (text, [])
