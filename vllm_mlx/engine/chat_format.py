"""Which chat-template path a vision model's conversation goes through.

Contract: ``chat_renderer(processor, config, typed=...)`` returns
``render(messages, **kwargs) -> str`` for messages with typed content parts
(``{"type": "text" | "image" | "video", ...}``):
- the processor's own chat template when it renders typed parts (most families);
- otherwise, for a family mlx-vlm formats itself (DeepSeek-VL2, Phi-3-vision, Molmo,
  whose templates take strings only and would print the list), mlx-vlm's
  ``apply_chat_template``, which writes the family's media markers into the text, as its
  own generate CLI does.
``takes_typed_parts(processor)`` probes the template with a typed text message;
``shows_tools(loaded)`` probes it with a tool (a template that ignores tools gets them
described in a system message instead: :mod:`vllm_mlx.openai.prompted_tools`);
``template_text(loaded)`` is its source, read for the tool-call format;
:class:`~.loaded.LoadedModel` keeps the answer (``chat_takes_typed_parts``) for ``typed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Render = Callable[..., Any]
_PROBE = [{"role": "user", "content": [{"type": "text", "text": "probe"}]}]


def takes_typed_parts(processor: Any) -> bool:
    """Whether the processor's chat template renders typed content parts."""
    from mlx_vlm.prompt_utils import get_chat_template

    try:
        text = str(get_chat_template(processor, _PROBE, True))
    except Exception:  # a string-only template fails on a list in many ways
        return False
    return "probe" in text and "'type'" not in text


def chat_renderer(processor: Any, config: Mapping[str, Any], *, typed: bool) -> Render:
    from mlx_vlm.prompt_utils import MODEL_CONFIG, apply_chat_template, get_chat_template

    family = str(config.get("model_type", "")).lower()
    if family not in MODEL_CONFIG or typed:
        return lambda messages, **kw: get_chat_template(processor, messages, True, **kw)
    return lambda messages, **kw: apply_chat_template(
        processor, config, _text_as_strings(messages), True, **kw)


def _text_as_strings(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without media get their text as one string (tool turns pass through
    mlx-vlm's formatting untouched)."""
    out = []
    for message in messages:
        parts = message["content"]
        if all(part["type"] == "text" for part in parts):
            message = {**message, "content": "".join(part["text"] for part in parts)}
        out.append(message)
    return out


_TOOL_PROBE = {"type": "function", "function": {
    "name": "probe_tool", "description": "probe",
    "parameters": {"type": "object", "properties": {}}}}


def chat_templates(loaded: Any) -> dict[str, str]:
    """The model's chat templates by name (one unnamed template is ``default``), from the
    first of its tokenizer and processor that has any; empty when none has."""
    for owner in (loaded.tokenizer, getattr(loaded.processor, "tokenizer", None),
                  loaded.processor):
        template = getattr(owner, "chat_template", None)
        if isinstance(template, str) and template:
            return {"default": template}
        if isinstance(template, Mapping) and template:
            return {str(k): str(v) for k, v in template.items()}
    return {}


def template_text(loaded: Any) -> str:
    """The template a request with tools renders with (the ``tool_use`` one, else the
    default), for telling the model's tool-call format apart; "" when it has none."""
    templates = chat_templates(loaded)
    return templates.get("tool_use") or templates.get("default") or ""


def shows_tools(loaded: Any) -> bool:
    """Whether the model's chat template writes a request's tools into the prompt (a probe
    render with and without one); False when it cannot render the probe at all."""
    try:
        if loaded.is_vision:
            typed = loaded.chat_takes_typed_parts
            render = chat_renderer(loaded.processor, loaded.config, typed=typed)
            messages = [{"role": "user", "content": _PROBE[0]["content"] if typed
                         else "probe"}]
        else:
            messages = [{"role": "user", "content": "probe"}]

            def render(msgs: Any, **kw: Any) -> Any:
                return loaded.tokenizer.apply_chat_template(
                    msgs, add_generation_prompt=True, tokenize=False, **kw)
        return str(render(messages, tools=[_TOOL_PROBE])) != str(render(messages))
    except Exception:  # a template that fails on the probe is no better at real tools
        return False
