"""Formats that write calls like code: Gemma 3 and FunctionGemma.

- ``gemma``: the reply is a Python list of calls with keyword arguments,
  ``[get_weather(city="Oslo", days=2)]``, bare or in a ```` ```tool_code ```` fence (Gemma 3
  has no tool tokens; its function-calling guide asks for this form in the prompt)
- ``functiongemma``: ``<start_function_call>call:name{key:<escape>text<escape>,n:2}``
  ``<end_function_call>``; strings sit between ``<escape>`` tokens, other values are bare
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from typing import Any

from .base import (
    BlockFormat,
    Functions,
    ToolCall,
    ToolFormat,
    cut_call,
    json_rule,
    lark_literal,
    new_call,
)
from .kv_formats import arguments_rules

_BARE_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False,
               "None": None}


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id in _BARE_NAMES:
        return _BARE_NAMES[node.id]
    if isinstance(node, ast.List):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values) if k}
    return ast.literal_eval(node)


def _python_call(node: ast.expr, functions: Functions) -> ToolCall | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in functions and not node.args):
        return None
    try:
        arguments = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
    except (ValueError, TypeError, SyntaxError):
        return None
    return new_call(node.func.id, arguments)


class Gemma(ToolFormat):
    name = "gemma"
    FENCE = "```tool_code"
    markers = (FENCE, "[")
    at_start_only = True
    _FENCED = re.compile(r"^\s*```tool_code\s*(.*?)\s*(?:```\s*)?$", re.DOTALL)

    def detect(self, template: str) -> bool:
        return "tool_code" in template

    def split(self, text: str, functions: Functions, cut_short: bool = False
              ) -> tuple[str, list[ToolCall]]:
        fenced = self._FENCED.match(text)
        code = fenced.group(1) if fenced else text.strip()
        try:
            tree = ast.parse(code, mode="eval").body
        except SyntaxError:
            return text, []
        nodes = tree.elts if isinstance(tree, ast.List) else [tree]
        calls = [_python_call(n, functions) for n in nodes]
        if nodes and all(calls):
            return "", [c for c in calls if c]
        return text, []

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        return [f'{rule}: {json.dumps(name + "(")} {rule}_args ")"',
                *arguments_rules(rule, schema, lambda key, value: f'{json.dumps(key + "=")} '
                                 f'{value}', json_rule, ", ")]

    def sequence(self, call: str, many: bool, tokenizer: Any) -> str:
        return f'"[" {call} (", " {call})* "]"' if many else f'"[" {call} "]"'

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}"
                         for k, v in arguments.items())
        return f"[{name}({args})]"


class _Reader:
    """FunctionGemma's argument syntax: ``{key:value,...}``, ``[v,...]``, ``<escape>``
    strings, bare numbers and booleans."""

    ESC = "<escape>"
    BARE = re.compile(r'"(?:[^"\\]|\\.)*"|[^,}\]]+')  # a quoted string, or up to , } ]

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def value(self) -> Any:
        text = self.text
        if text.startswith(self.ESC, self.pos):
            end = text.index(self.ESC, self.pos + len(self.ESC))
            value, self.pos = text[self.pos + len(self.ESC):end], end + len(self.ESC)
            return value
        if text.startswith("{", self.pos):
            return self.items("}", lambda: (self.key(), self.value()), dict)
        if text.startswith("[", self.pos):
            return self.items("]", self.value, list)
        match = self.BARE.match(text, self.pos)
        if match is None:
            raise ValueError("no value")
        self.pos = match.end()
        bare = match.group(0).strip()
        return _BARE_NAMES.get(bare, json.loads(bare) if bare[:1] in '"-0123456789'
                               else bare)

    def key(self) -> str:
        end = self.text.index(":", self.pos)
        key, self.pos = self.text[self.pos:end].strip().strip('"'), end + 1
        return key

    def items(self, close: str, read: Any, kind: Any) -> Any:
        self.pos += 1
        out = []
        while not self.text.startswith(close, self.pos):
            out.append(read())
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith(close, self.pos):
                raise ValueError("unfinished")
        self.pos += 1
        return kind(out)


class FunctionGemma(BlockFormat):
    name = "functiongemma"
    open, close = "<start_function_call>", "<end_function_call>"
    keeps_special_tokens = True
    _HEAD = re.compile(r"\s*call:([\w.-]+)")

    def detect(self, template: str) -> bool:
        return self.open in template or "<start_function_declaration>" in template

    def parse_body(self, body: str, functions: Functions) -> list[ToolCall] | None:
        head = self._HEAD.match(body)
        if head is None or head.group(1) not in functions:
            return None
        reader = _Reader(body[head.end():].strip())
        try:
            arguments = reader.value()
        except (ValueError, IndexError):
            return None
        call = new_call(head.group(1), arguments) if not reader.text[reader.pos:].strip() \
            else None
        return [call] if call else None

    def partial_body(self, body: str, functions: Functions) -> ToolCall | None:
        head = self._HEAD.match(body)
        if head is None or head.group(1) not in functions or "{" not in body:
            return None
        return cut_call(head.group(1), body[head.end():].strip())

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        escape = lark_literal(_Reader.ESC, tokenizer)

        def value(spec: Mapping[str, Any]) -> str:  # a string goes between escapes, raw
            return (f"{escape} /[^<]*/ {escape}" if spec.get("type") == "string"
                    else json_rule(spec))

        opening, closing = lark_literal(self.open, tokenizer), lark_literal(self.close,
                                                                              tokenizer)
        return [f'{rule}: {opening} {json.dumps("call:" + name + "{")} {rule}_args "}}" '
                f"{closing}",
                *arguments_rules(rule, schema, lambda key, v: f"{json.dumps(key + ':')} {v}",
                                 value, ",")]

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        args = ",".join(f"{k}:{_Reader.ESC}{v}{_Reader.ESC}" if isinstance(v, str)
                        else f"{k}:{json.dumps(v)}" for k, v in arguments.items())
        return f"{self.open}call:{name}{{{args}}}{self.close}"
