"""The libraries' own greedy tokens for a conversation: the oracle every family is held to.

``library_tokens(arch, folder, messages, max_tokens)`` loads the folder with mlx-vlm (vision
archs) or mlx-lm (text archs), renders ``messages`` with the library's own chat-template
path, and returns the greedy token ids its own generate gives, EOS left out. Messages are
the engine's :class:`ChatMessage` values, so a test can send the same conversation to both.
Loaded models are kept per folder for the session.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from vllm_mlx.engine import ChatMessage, ImagePart, TextPart
from vllm_mlx.tiny import ARCHITECTURES


@cache
def _load(folder: str, vision: bool) -> tuple[Any, Any]:
    if vision:
        import mlx_vlm

        from vllm_mlx.engine.processor_fixes import fix_processor

        model, processor = mlx_vlm.load(folder)
        # WORKAROUND, the one the engine applies at load: mlx-vlm 0.7.10's LlavaProcessor
        # passes tokenizer kwargs (padding) to transformers 5's image processor.
        return model, fix_processor(processor)
    import mlx_lm

    model, tokenizer, *_ = mlx_lm.load(folder)
    return model, tokenizer


def _typed(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        content = [{"type": "text", "text": p.text} if isinstance(p, TextPart)
                   else {"type": "image"} for p in message.content]
        out.append({"role": message.role, "content": content})
    return out


def _plain(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": "".join(p.text for p in m.content
                                               if isinstance(p, TextPart))}
            for m in messages]


def vision_prompt(model: Any, processor: Any, messages: tuple[ChatMessage, ...]) -> str:
    """The prompt mlx-vlm itself would write: the processor's template with typed parts, or
    (string-only templates) mlx-vlm's per-family ``apply_chat_template``, as its CLI does."""
    from mlx_vlm.prompt_utils import MODEL_CONFIG, apply_chat_template, get_chat_template

    from vllm_mlx.engine.chat_format import takes_typed_parts

    typed = _typed(messages)
    family = str(model.config.model_type).lower()
    if family not in MODEL_CONFIG or takes_typed_parts(processor):
        return str(get_chat_template(processor, typed, True))
    as_strings = [{**m, "content": "".join(p["text"] for p in m["content"])}
                  if all(p["type"] == "text" for p in m["content"]) else m for m in typed]
    return str(apply_chat_template(processor, model.config, as_strings, True))


def vision_tokens(model: Any, processor: Any, messages: tuple[ChatMessage, ...],
                  max_tokens: int) -> list[int]:
    import mlx.core as mx
    import mlx_vlm
    from mlx_vlm.utils import prepare_inputs, should_add_special_tokens

    from vllm_mlx.engine.processor_fixes import fix_inputs

    images = [p.image for m in messages for p in m.content if isinstance(p, ImagePart)]
    prompt = vision_prompt(model, processor, messages)
    inputs = dict(prepare_inputs(
        processor, images=images or None, prompts=prompt,
        image_token_index=getattr(model.config, "image_token_index", None),
        add_special_tokens=should_add_special_tokens(model.config.model_type, processor)))
    # WORKAROUND, the engine's too: DeepSeek-VL2 reads its tile table past the end.
    inputs = fix_inputs(inputs)
    mx.eval([v for v in inputs.values() if isinstance(v, mx.array)])
    result = mlx_vlm.generate(model, processor, prompt, input_ids=inputs.pop("input_ids"),
                              pixel_values=inputs.pop("pixel_values", None),
                              mask=inputs.pop("attention_mask", None), **inputs,
                              max_tokens=max_tokens, temperature=0.0)
    return list(result.token_ids or [])


def text_tokens(model: Any, tokenizer: Any, messages: tuple[ChatMessage, ...],
                max_tokens: int) -> list[int]:
    import mlx_lm

    prompt = tokenizer.apply_chat_template(_plain(messages), add_generation_prompt=True,
                                           tokenize=False)
    tokens = [r.token for r in mlx_lm.stream_generate(model, tokenizer, prompt,
                                                      max_tokens=max_tokens)]
    eos = set(tokenizer.eos_token_ids)
    return [t for t in tokens if t not in eos][:max_tokens]


def library_tokens(arch: str, folder: Path, messages: tuple[ChatMessage, ...],
                   max_tokens: int) -> list[int]:
    vision = ARCHITECTURES[arch.split(":")[0]].is_vision
    model, processor = _load(str(folder), vision)
    if vision:
        return vision_tokens(model, processor, messages, max_tokens)
    return text_tokens(model, processor, messages, max_tokens)
