"""Formats that write each argument apart, its value as raw text: Qwen3-Coder and GLM 4.5.

- ``qwen3_coder``: ``<tool_call>\\n<function=name>\\n<parameter=key>\\nvalue\\n</parameter>
  \\n</function>\\n</tool_call>``
- ``glm45``: ``<tool_call>name\\n<arg_key>key</arg_key>\\n<arg_value>value</arg_value>\\n
  </tool_call>``

A string parameter's value is its text as written; any other value is read as JSON where it
parses. Under a forced call's grammar a string value is text without ``<`` (the formats
end a value with a tag), within the schema's ``maxLength``, or one of its ``enum``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .base import (
    BlockFormat,
    Functions,
    ToolCall,
    cut_call,
    json_rule,
    lark_literal,
    new_call,
    typed_value,
)


def ordered_properties(schema: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], bool]]:
    """(key, schema, required), the required ones first, each group in schema order."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    required = set(schema.get("required") or ())
    items = [(k, v if isinstance(v, Mapping) else {}, k in required)
             for k, v in properties.items()]
    return [i for i in items if i[2]] + [i for i in items if not i[2]]


def value_rule(schema: Mapping[str, Any]) -> str:
    """A raw value's Lark expression: strings as tag-free text, the rest as JSON."""
    if schema.get("type") == "string" and "enum" not in schema:
        limit = schema.get("maxLength")
        return f"/[^<]{{0,{int(limit)}}}/" if isinstance(limit, int) else "/[^<]*/"
    if schema.get("type") == "string":
        return "(" + " | ".join(json.dumps(str(v)) for v in schema["enum"]) + ")"
    return json_rule(schema)


def line_value_rule(schema: Mapping[str, Any]) -> str:
    """:func:`value_rule` followed by a newline, as one piece: a text value that may hold
    newlines itself must not swallow the one that ends it."""
    rule = value_rule(schema)
    if rule.startswith("/"):
        return rule[:-1] + "\\n/"
    return f'{rule} "\\n"'


def arguments_rules(rule: str, schema: Mapping[str, Any], argument: Any,
                    value: Any = value_rule, separator: str = "") -> list[str]:
    """``{rule}_args``: each property through ``argument(key, value_expression)``, with
    ``separator`` between them, the optional ones optional (see :func:`separated`)."""
    parts, rules = [], []
    for i, (key, spec, required) in enumerate(ordered_properties(schema)):
        rules.append(f"{rule}_v{i}: {value(spec)}")
        parts.append((argument(key, f"{rule}_v{i}"), required))
    rules.append(f"{rule}_args: {separated(parts, separator)}")
    return rules


def separated(parts: list[tuple[str, bool]], separator: str) -> str:
    """A Lark sequence of (argument, required) pairs with ``separator`` between them:
    every argument after the first required one carries its own leading separator, and an
    optional one is left out together with it."""
    body, first = [], True
    for written, required in parts:
        piece = written if first or not separator else f"{json.dumps(separator)} {written}"
        body.append(piece if required else f"({piece})?")
        first = first and not required
    return " ".join(body) or '""'


def _json_so_far(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False)


class Qwen3Coder(BlockFormat):
    name = "qwen3_coder"
    open, close = "<tool_call>", "</tool_call>"
    _FUNCTION = re.compile(r"\s*<function=([^>\n]+)>(.*?)(?:</function>\s*)?$", re.DOTALL)
    _PARAMETER = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)(?:\n?</parameter>|"
                            r"(?=<parameter=)|$)", re.DOTALL)

    def detect(self, template: str) -> bool:
        return "<function=" in template and "<parameter=" in template

    def _read(self, body: str, functions: Functions) -> tuple[str, dict[str, Any], bool]:
        match = self._FUNCTION.match(body)
        if match is None or match.group(1).strip() not in functions:
            return "", {}, False
        name = match.group(1).strip()
        schema = functions[name]
        arguments = {key.strip(): typed_value(value, schema, key.strip())
                     for key, value in self._PARAMETER.findall(match.group(2))}
        return name, arguments, "</function>" in body

    def parse_body(self, body: str, functions: Functions) -> list[ToolCall] | None:
        name, arguments, closed = self._read(body, functions)
        call = new_call(name, arguments) if name and closed else None
        return [call] if call else None

    def partial_body(self, body: str, functions: Functions) -> ToolCall | None:
        """Cut short: the call with the parameters whose closing tag was written."""
        end = body.rfind("</parameter>")
        closed = body[:end + len("</parameter>")] if end != -1 else ""
        name = self._read(body, functions)[0]
        done = self._read(closed, functions)[1] if closed else {}
        return cut_call(name, _json_so_far(done)) if name else None

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        opening, closing = lark_literal(self.open, tokenizer), lark_literal(self.close,
                                                                              tokenizer)
        head = json.dumps(f"\n<function={name}>\n")
        return [f'{rule}: {opening} {head} {rule}_args "</function>\\n" {closing}',
                *arguments_rules(rule, schema, lambda key, value: (
                    f'{json.dumps(f"<parameter={key}>{chr(10)}")} {value} '
                    f'"</parameter>\\n"'), line_value_rule)]

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        params = "".join(f"<parameter={k}>\n{v if isinstance(v, str) else json.dumps(v)}\n"
                         "</parameter>\n" for k, v in arguments.items())
        return f"{self.open}\n<function={name}>\n{params}</function>\n{self.close}"


class Glm45(BlockFormat):
    name = "glm45"
    open, close = "<tool_call>", "</tool_call>"
    _PAIR = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)(?:</arg_value>|$)",
                       re.DOTALL)

    def detect(self, template: str) -> bool:
        return "<arg_key>" in template

    def _read(self, body: str, functions: Functions) -> tuple[str, dict[str, Any]]:
        name = re.split(r"\n|<arg_key>", body.strip(), maxsplit=1)[0].strip()
        if name not in functions:
            return "", {}
        schema = functions[name]
        return name, {key.strip(): typed_value(value, schema, key.strip())
                      for key, value in self._PAIR.findall(body)}

    def parse_body(self, body: str, functions: Functions) -> list[ToolCall] | None:
        name, arguments = self._read(body, functions)
        unfinished = body.count("<arg_value>") != body.count("</arg_value>")
        call = new_call(name, arguments) if name and not unfinished else None
        return [call] if call else None

    def partial_body(self, body: str, functions: Functions) -> ToolCall | None:
        """Cut short: the call with the values whose closing tag was written."""
        end = body.rfind("</arg_value>")
        name, arguments = self._read(body[:end + len("</arg_value>")], functions) \
            if end != -1 else (self._read(body, functions)[0], {})
        complete = "\n" in body.strip() or "<arg_key>" in body
        return cut_call(name, _json_so_far(arguments)) if name and complete else None

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        tags = {t: lark_literal(t, tokenizer) for t in (
            self.open, self.close, "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>")}
        return [f"{rule}: {tags[self.open]} {json.dumps(name + chr(10))} {rule}_args "
                f"{tags[self.close]}",
                *arguments_rules(rule, schema, lambda key, value: (
                    f'{tags["<arg_key>"]} {json.dumps(key)} {tags["</arg_key>"]} "\\n" '
                    f'{tags["<arg_value>"]} {value} {tags["</arg_value>"]} "\\n"'))]

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        pairs = "".join(f"<arg_key>{k}</arg_key>\n<arg_value>"
                        f"{v if isinstance(v, str) else json.dumps(v)}</arg_value>\n"
                        for k, v in arguments.items())
        return f"{self.open}{name}\n{pairs}{self.close}"
