"""Tool-call formats of the model families, one :class:`ToolFormat` each (see :mod:`.base`
for the interface), and the choice of one for a model.

:func:`format_for` picks the format from the chat template's text (the markers its tool
turns are written with) unless a name is given (``--tool-call-parser``); a template that
shows none gets ``hermes``, the form :mod:`..prompted_tools` teaches models whose template
cannot show tools. Templates are tried most specific first: GLM 4.5 and Qwen3-Coder also
write ``<tool_call>``.
"""

from __future__ import annotations

from .base import ToolCall, ToolFormat, lark_literal
from .json_formats import DeepSeekV3, Harmony, Hermes, Llama3Json, Mistral
from .kv_formats import Glm45, Qwen3Coder
from .pythonic import FunctionGemma, Gemma

__all__ = ["FORMATS", "ToolCall", "ToolFormat", "format_for", "lark_literal"]

FORMATS: dict[str, ToolFormat] = {f.name: f for f in (
    Glm45(), Qwen3Coder(), FunctionGemma(), Mistral(), DeepSeekV3(), Harmony(), Hermes(),
    Llama3Json(), Gemma())}
DEFAULT = "hermes"


def format_for(template: str | None, name: str | None = None) -> ToolFormat:
    """The named format (a ``ValueError`` for an unknown name), else the template's."""
    template = template or ""
    if name:
        if name not in FORMATS:
            raise ValueError(f"unknown tool-call parser {name!r}; known: "
                             f"{', '.join(sorted(FORMATS))}")
        return FORMATS[name].for_template(template)
    for fmt in FORMATS.values():
        if fmt.detect(template):
            return fmt.for_template(template)
    return FORMATS[DEFAULT]
