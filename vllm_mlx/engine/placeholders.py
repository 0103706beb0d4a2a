"""Which prompt token ids stand for media: ``media_placeholder_ids(loaded)``.

Contract: for a loaded model, the set of token ids whose positions a family fills (or
marks) with image, video or audio content, read at load time from the config, the
processor and the tokenizer; ``None`` when a vision-language model's placeholders cannot
be determined, ``frozenset()`` for a text model. A set holding :data:`ALL_NEGATIVE` (-1)
means that *every* negative id is a placeholder too (Phi-3-vision writes image N's
positions as ``-N``).

The set errs on the side of more ids: structure tokens around the features (Qwen's
``<|vision_start|>``, Gemma's ``<start_of_image>``, Molmo's ``<im_start>``/``<im_col>``)
are included, so a caller that cuts a reusable prefix at the first placeholder cuts at or
before the first position whose embedding depends on the media. Sources, unioned:

- config keys (top level, the nested text/vision/language/audio configs, and the loaded
  model's config object with its defaults) named like ``image_token_id``,
  ``video_token_index``, ``boi_token_id``, ``im_patch_id``, ``img_context_token_id``;
- processor and tokenizer attributes named like ``image_token`` / ``image_patch_token``
  (strings, looked up in the tokenizer) or ``image_token_id`` (ints);
- the tokenizer's special tokens whose text names an image, video or vision.

An id counts only if the tokenizer has it as an added token: a config default that does
not belong to this vocabulary (mlx-vlm's DeepSeek-VL2 ``image_token_index`` 100015) is
dropped. Families whose placeholders are not in any of these (none known besides the
negative-id one) give ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .loaded import LoadedModel

ALL_NEGATIVE = -1
# Families whose processor writes media positions as negative ids (mlx-vlm 0.7.10).
NEGATIVE_ID_FAMILIES = frozenset({"phi3_v"})

_MEDIA_WORD = r"(?:image|video|audio|vision|img|im|media|boi|eoi|boa|eoa|patch|subpatch)"
_ID_KEY = re.compile(rf"^(?:\w+_)?{_MEDIA_WORD}(?:_\w+)?_(?:id|ids|index)$")
_TOKEN_ATTR = re.compile(rf"^(?:\w+_)?{_MEDIA_WORD}(?:_\w+)?_token$")
_NESTED = ("text_config", "vision_config", "language_config", "llm_config", "audio_config")
_MEDIA_TEXT = ("image", "video", "vision")


def media_placeholder_ids(loaded: LoadedModel) -> frozenset[int] | None:
    """The media placeholder ids of ``loaded`` (see the module docstring)."""
    if not loaded.is_vision:
        return frozenset()
    tokenizer = loaded.tokenizer
    added = _added_ids(tokenizer)
    candidates = set(_config_ids(loaded.config))
    candidates |= set(_config_ids(_as_mapping(getattr(loaded.model, "config", None))))
    for owner in (loaded.processor, tokenizer):
        candidates |= set(_attribute_ids(owner, tokenizer))
    candidates |= {i for i, text in _special_tokens(tokenizer)
                   if any(word in text.lower() for word in _MEDIA_TEXT)}
    ids = {i for i in candidates if i in added}
    if loaded.capabilities.model_type in NEGATIVE_ID_FAMILIES:
        ids.add(ALL_NEGATIVE)
    return frozenset(ids) if ids else None


def _as_mapping(config: Any) -> Mapping[str, Any]:
    if isinstance(config, Mapping):
        return config
    return {k: _as_mapping(v) if hasattr(v, "__dict__") else v
            for k, v in getattr(config, "__dict__", {}).items()}


def _config_ids(config: Mapping[str, Any]) -> Iterator[int]:
    sources = [config] + [config[k] for k in _NESTED if isinstance(config.get(k), Mapping)]
    for source in sources:
        for key, value in source.items():
            if isinstance(key, str) and _ID_KEY.match(key):
                yield from _ints(value)


def _ints(value: Any) -> Iterator[int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _ints(item)


def _attribute_ids(owner: Any, tokenizer: Any) -> Iterator[int]:
    """Ids named by ``owner``'s instance attributes (``image_token``, ``image_token_id``)."""
    for name, value in list(getattr(owner, "__dict__", {}).items()):
        if _TOKEN_ATTR.match(name) and isinstance(value, str) and value:
            token_id = _token_id(tokenizer, value)
            if token_id is not None:
                yield token_id
        elif _ID_KEY.match(name):
            yield from _ints(value)


def _token_id(tokenizer: Any, token: str) -> int | None:
    try:
        token_id = tokenizer.convert_tokens_to_ids(token)
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(token_id, int) or token_id == getattr(tokenizer, "unk_token_id", None):
        return None
    return token_id


def _special_tokens(tokenizer: Any) -> Iterable[tuple[int, str]]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return [(int(i), t.content) for i, t in decoder.items() if getattr(t, "special", False)]


def _added_ids(tokenizer: Any) -> frozenset[int]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return frozenset(int(i) for i in decoder)
