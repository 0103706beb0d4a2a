"""Narrow workarounds for processor bugs of the pinned library versions.

Contract: ``fix_processor(processor)`` returns the processor ready for
:func:`mlx_vlm.utils.prepare_inputs`; a processor without a known bug is returned as is.
Each fix makes the processor give exactly what it would give without the bug, so the
tokens equal those of a library version that has it fixed.

- mlx-vlm 0.7.10's ``LlavaProcessor.__call__`` forwards every keyword it gets to both the
  tokenizer and the image processor; ``prepare_inputs`` always passes ``padding``, which
  transformers 5's image processors refuse (``ImagesKwargs.__init__() got an unexpected
  keyword argument 'padding'``). The fix drops tokenizer-only keywords on the way to the
  image processor (transformers 4 ignored them there).
"""

from __future__ import annotations

from typing import Any

TOKENIZER_ONLY = frozenset({"padding", "padding_side", "add_special_tokens", "truncation",
                            "max_length"})


class ImageKwargsFilter:
    """Stands for an image processor; calls it without tokenizer-only keywords."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, images: Any, **kwargs: Any) -> Any:
        kept = {k: v for k, v in kwargs.items() if k not in TOKENIZER_ONLY}
        return self._inner(images, **kept)

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # copy / pickle look it up before __init__ ran
            raise AttributeError(name)
        return getattr(self._inner, name)


def _needs_filter(processor: Any) -> bool:
    cls = type(processor)
    return cls.__name__ == "LlavaProcessor" and cls.__module__.startswith("mlx_vlm.")


def fix_processor(processor: Any) -> Any:
    """Apply the known fixes to a freshly loaded mlx-vlm processor (in place)."""
    image = getattr(processor, "image_processor", None)
    if image is not None and _needs_filter(processor) and not isinstance(
            image, ImageKwargsFilter):
        processor.image_processor = ImageKwargsFilter(image)
    return processor
