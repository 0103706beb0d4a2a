"""Narrow workarounds for processor bugs of the pinned library versions.

Contract: ``fix_processor(processor)`` returns the processor ready for
:func:`mlx_vlm.utils.prepare_inputs`; a processor without a known bug is returned as is.
``fix_inputs(inputs)`` does the same for the inputs ``prepare_inputs`` gave. Each fix makes
the result exactly what it would be without the bug, so the tokens equal those of a
library version that has it fixed.

- mlx-vlm 0.7.10's ``LlavaProcessor.__call__`` forwards every keyword it gets to both the
  tokenizer and the image processor; ``prepare_inputs`` always passes ``padding``, which
  transformers 5's image processors refuse (``ImagesKwargs.__init__() got an unexpected
  keyword argument 'padding'``). The fix drops tokenizer-only keywords on the way to the
  image processor (transformers 4 ignored them there).
- mlx-vlm 0.7.10's DeepSeek-VL2 scans ``images_spatial_crop[i][j]`` for ``j`` up to the
  number of *tiles* (``pixel_values.shape[1]``), not images, until it meets a zero row.
  MLX does not check bounds: past the last image it reads whatever memory follows, so the
  tiles it counts, and the answer, vary from run to run (an image was seen dropped, or a
  prefill failed on garbage slice bounds). Zero rows up to the scanned length make the
  scan stop after the last image, as the code means to.
"""

from __future__ import annotations

from typing import Any

from ._mlx import mx

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


def fix_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """``prepare_inputs``' result with the known fixes applied."""
    crop, pixels = inputs.get("images_spatial_crop"), inputs.get("pixel_values")
    if not (isinstance(crop, mx.array) and isinstance(pixels, mx.array)
            and crop.ndim == 3 and pixels.ndim == 5):
        return inputs
    missing = pixels.shape[1] - crop.shape[1]
    if missing <= 0:
        return inputs
    padded = mx.pad(crop, [(0, 0), (0, missing), (0, 0)])
    return {**inputs, "images_spatial_crop": padded}
