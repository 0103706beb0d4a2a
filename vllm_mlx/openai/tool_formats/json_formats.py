"""Formats whose arguments are one JSON object: Hermes / Qwen, Llama 3.x, Mistral,
DeepSeek V3 / R1 / V3.1 and gpt-oss harmony.

- ``hermes``: ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``
- ``llama3_json``: the reply is ``{"name": ..., "parameters": {...}}`` (several joined by
  ``;``), optionally after ``<|python_tag|>``
- ``mistral``: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``, or (tokenizers v11
  on) ``[TOOL_CALLS]name[ARGS]{...}`` per call
- ``deepseek_v3``: ``<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>name``
  then the arguments in a json code fence, ``<｜tool▁call▁end｜>``; V3.1 writes
  ``name<｜tool▁sep｜>{...}`` instead
- ``harmony``: ``<|channel|>commentary to=functions.name <|constrain|>json<|message|>{...}``
  ending at ``<|call|>``
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
    ToolFormat,
    cut_call,
    json_rule,
    lark_literal,
    new_call,
)

_DECODER = json.JSONDecoder()
_PARTIAL_NAME = re.compile(r'^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_PARTIAL_ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:\s*')


def _call_of(value: Any, functions: Functions) -> ToolCall | None:
    """``{"name", "arguments" | "parameters"}`` naming an offered function, as a call."""
    if not isinstance(value, dict) or value.get("name") not in functions:
        return None
    return new_call(value["name"], value.get("arguments", value.get("parameters", {})))


def _partial_object_call(body: str, functions: Functions) -> ToolCall | None:
    name = _PARTIAL_NAME.match(body)
    if name is None or name.group(1) not in functions:
        return None
    arguments = _PARTIAL_ARGUMENTS.search(body, name.end())
    return cut_call(name.group(1), body[arguments.end():] if arguments else "")


def _json_values(text: str) -> tuple[list[Any], int]:
    """JSON values at the start of ``text`` separated by whitespace, ``,`` or ``;``; and
    where the last one ended."""
    values: list[Any] = []
    pos = end = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n;,":
            pos += 1
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except ValueError:
            return values, end
        values.append(value)
        end = pos


def _object_head(name: str, key: str) -> str:
    return json.dumps(f'{{"name": {json.dumps(name)}, "{key}": ')


class Hermes(BlockFormat):
    name = "hermes"
    open, close = "<tool_call>", "</tool_call>"

    def detect(self, template: str) -> bool:
        return self.open in template

    def parse_body(self, body: str, functions: Functions) -> list[ToolCall] | None:
        try:
            call = _call_of(json.loads(body.strip()), functions)
        except ValueError:
            return None
        return [call] if call else None

    def partial_body(self, body: str, functions: Functions) -> ToolCall | None:
        return _partial_object_call(body, functions)

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        opening, closing = lark_literal(self.open, tokenizer), lark_literal(self.close,
                                                                              tokenizer)
        head = json.dumps(f'\n{{"name": {json.dumps(name)}, "arguments": ')
        return [f'{rule}: {opening} {head} {rule}_args "}}\\n" {closing}',
                f"{rule}_args: {json_rule(schema)}"]

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        return f"{self.open}\n{body}\n{self.close}"


class Llama3Json(ToolFormat):
    name = "llama3_json"
    markers = ("<|python_tag|>", "{")
    at_start_only = True
    keeps_special_tokens = True
    TAG = "<|python_tag|>"

    def detect(self, template: str) -> bool:
        return self.TAG in template or (
            "<|start_header_id|>" in template and '"parameters"' in template)

    def split(self, text: str, functions: Functions, cut_short: bool = False
              ) -> tuple[str, list[ToolCall]]:
        body = text.lstrip()
        body = body[len(self.TAG):] if body.startswith(self.TAG) else body
        values, end = _json_values(body)
        calls = [_call_of(v, functions) for v in values]
        if values and all(calls):
            return body[end:].strip(), [c for c in calls if c]
        if not values and cut_short:
            partial = _partial_object_call(body, functions)
            if partial:
                return "", [partial]
        return text, []

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        return [f'{rule}: {_object_head(name, "parameters")} {rule}_args "}}"',
                f"{rule}_args: {json_rule(schema)}"]

    def sequence(self, call: str, many: bool, tokenizer: Any) -> str:
        return f'{call} ("; " {call})*' if many else call

    def call_or_json(self, functions: Functions, schema: Mapping[str, Any]
                     ) -> tuple[str, list[str]] | None:
        calls = [{"type": "object", "properties": {"name": {"const": name},
                                                   "parameters": parameters},
                  "required": ["name", "parameters"], "additionalProperties": False}
                 for name, parameters in functions.items()]
        return "call_or_answer", [f"call_or_answer: {json_rule({'anyOf': [*calls, schema]})}"]

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        return json.dumps({"name": name, "parameters": arguments}, ensure_ascii=False)


class Mistral(ToolFormat):
    name = "mistral"
    TAG, ARGS = "[TOOL_CALLS]", "[ARGS]"
    markers = (TAG,)
    keeps_special_tokens = True

    def __init__(self, args_marker: bool = False) -> None:
        self.args_marker = args_marker  # [TOOL_CALLS]name[ARGS]{...} (tokenizers v11 on)

    def detect(self, template: str) -> bool:
        return self.TAG in template

    def for_template(self, template: str) -> Mistral:
        return Mistral(self.ARGS in template)

    def split(self, text: str, functions: Functions, cut_short: bool = False
              ) -> tuple[str, list[ToolCall]]:
        start = text.find(self.TAG)
        if start == -1:
            return text, []
        calls: list[ToolCall] = []
        for piece in text[start:].split(self.TAG)[1:]:
            found = self._piece(piece.strip(), functions, cut_short)
            if found is None:
                return text, []
            calls += found
        return (text[:start].strip(), calls) if calls else (text, [])

    def _piece(self, piece: str, functions: Functions, cut_short: bool
               ) -> list[ToolCall] | None:
        if self.ARGS in piece:  # name[ARGS]{...}
            name, _, arguments = piece.partition(self.ARGS)
            if name.strip() not in functions:
                return None
            values, end = _json_values(arguments)
            if values and not arguments[end:].strip():
                call = new_call(name.strip(), values[0])
                return [call] if call else None
            return [cut_call(name.strip(), arguments.strip())] if cut_short else None
        values, end = _json_values(piece)
        if len(values) == 1 and isinstance(values[0], list) and not piece[end:].strip():
            calls = [_call_of(v, functions) for v in values[0]]
            return [c for c in calls if c] if calls and all(calls) else None
        partial = _partial_object_call(piece.lstrip("[ "), functions) if cut_short else None
        return [partial] if partial else None

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        if self.args_marker:
            return [f"{rule}: {lark_literal(self.TAG, tokenizer)} {json.dumps(name)} "
                    f"{lark_literal(self.ARGS, tokenizer)} {rule}_args",
                    f"{rule}_args: {json_rule(schema)}"]
        return [f'{rule}: {_object_head(name, "arguments")} {rule}_args "}}"',
                f"{rule}_args: {json_rule(schema)}"]

    def sequence(self, call: str, many: bool, tokenizer: Any) -> str:
        if self.args_marker:
            return f"{call}+" if many else call
        inner = f'{call} (", " {call})*' if many else call
        return f'{lark_literal(self.TAG, tokenizer)} "[" {inner} "]"'

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        args = json.dumps(arguments, ensure_ascii=False)
        if self.args_marker:
            return f"{self.TAG}{name}{self.ARGS}{args}"
        return f'{self.TAG}[{{"name": {json.dumps(name)}, "arguments": {args}}}]'


class DeepSeekV3(BlockFormat):
    name = "deepseek_v3"
    BEGIN, END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
    open, close, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
    keeps_special_tokens = True
    _FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*(?:```\s*)?$", re.DOTALL)

    def __init__(self, fenced: bool = True) -> None:
        self.fenced = fenced  # V3 / R1: function<sep>name + a json fence; V3.1: name<sep>{}

    @property
    def markers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.BEGIN, self.open)

    def detect(self, template: str) -> bool:
        return self.BEGIN in template

    def for_template(self, template: str) -> DeepSeekV3:
        return DeepSeekV3("```json" in template)

    def split(self, text: str, functions: Functions, cut_short: bool = False
              ) -> tuple[str, list[ToolCall]]:
        rest, calls = super().split(text, functions, cut_short)
        if not calls:
            return text, []
        return rest.replace(self.BEGIN, "").replace(self.END, "").strip(), calls

    def _name_and_arguments(self, body: str) -> tuple[str, str] | None:
        left, sep, right = body.partition(self.SEP)
        if not sep:
            return None
        if left.strip() == "function":  # V3 / R1
            name, _, arguments = right.partition("\n")
            fence = self._FENCE.match(arguments)
            return name.strip(), fence.group(1) if fence else arguments
        return left.strip(), right

    def parse_body(self, body: str, functions: Functions) -> list[ToolCall] | None:
        found = self._name_and_arguments(body)
        if found is None or found[0] not in functions:
            return None
        call = new_call(found[0], found[1])
        return [call] if call else None

    def partial_body(self, body: str, functions: Functions) -> ToolCall | None:
        found = self._name_and_arguments(body)
        if found is None or found[0] not in functions or (
                self.fenced and "\n" not in body.partition(self.SEP)[2]):
            return None
        return cut_call(found[0], found[1].strip())

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        opening, closing, sep = (lark_literal(t, tokenizer)
                                 for t in (self.open, self.close, self.SEP))
        if self.fenced:
            return [f'{rule}: {opening} "function" {sep} {json.dumps(name + chr(10))} '
                    f'"```json\\n" {rule}_args "\\n```" {closing}',
                    f"{rule}_args: {json_rule(schema)}"]
        return [f"{rule}: {opening} {json.dumps(name)} {sep} {rule}_args {closing}",
                f"{rule}_args: {json_rule(schema)}"]

    def sequence(self, call: str, many: bool, tokenizer: Any) -> str:
        begin, end = lark_literal(self.BEGIN, tokenizer), lark_literal(self.END, tokenizer)
        return f"{begin} {call}{'+' if many else ''} {end}"

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        args = json.dumps(arguments, ensure_ascii=False)
        call = (f"function{self.SEP}{name}\n```json\n{args}\n```" if self.fenced
                else f"{name}{self.SEP}{args}")
        return f"{self.BEGIN}{self.open}{call}{self.close}{self.END}"


class Harmony(ToolFormat):
    name = "harmony"
    markers = ("<|channel|>commentary", "<|start|>assistant to=", " to=functions.")
    keeps_special_tokens = True
    _CALL = re.compile(
        r"(?:<\|start\|>assistant)?(?:<\|channel\|>commentary)?\s*to=functions\.([\w-]+)"
        r"(?:\s*<\|channel\|>commentary)?\s*(?:<\|constrain\|>)?\s*(?:json)?\s*<\|message\|>"
        r"(.*?)(?:<\|call\|>|(?=<\|start\|>)|$)", re.DOTALL)

    def detect(self, template: str) -> bool:
        return "<|channel|>" in template or "<|call|>" in template

    def split(self, text: str, functions: Functions, cut_short: bool = False
              ) -> tuple[str, list[ToolCall]]:
        kept, calls, pos = [], [], 0
        for match in self._CALL.finditer(text):
            name, arguments = match.group(1), match.group(2)
            if name not in functions:
                continue
            ended = match.end() < len(text) or text.endswith("<|call|>")
            call = new_call(name, arguments)
            if call is None and cut_short and not ended:
                call = cut_call(name, arguments.strip())
            if call is None:
                continue
            kept.append(text[pos:match.start()])
            calls.append(call)
            pos = match.end()
        kept.append(text[pos:])
        return ("".join(kept).strip(), calls) if calls else (text, [])

    def call_rules(self, name: str, schema: Mapping[str, Any], rule: str,
                   tokenizer: Any) -> list[str]:
        channel, constrain, message, call = (
            lark_literal(t, tokenizer)
            for t in ("<|channel|>", "<|constrain|>", "<|message|>", "<|call|>"))
        return [f'{rule}: {channel} {json.dumps("commentary to=functions." + name + " ")} '
                f'{constrain} "json" {message} {rule}_args {call}',
                f"{rule}_args: {json_rule(schema)}"]

    def sequence(self, call: str, many: bool, tokenizer: Any) -> str:
        return call  # a harmony message carries one call; the next comes in a later turn

    def example(self, name: str, arguments: Mapping[str, Any]) -> str:
        args = json.dumps(arguments, ensure_ascii=False)
        return (f"<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>"
                f"{args}<|call|>")
