"""What every zoo recipe shares: :func:`zoo_recipe` builds a tiny-only :class:`Recipe`.

Contract: ``zoo_recipe(name, notes, family=None, vision=True, **parts)`` is
``Recipe(arch=TinyArch(...), presets=("tiny",), **parts)`` for an architecture without
video, opened with ``mlx_vlm.load`` (``vision``) or ``mlx_lm.load``, whose ``family``
defaults to its name.
"""

from __future__ import annotations

from typing import Any

from ..recipe import Recipe, TinyArch


def zoo_recipe(name: str, notes: str, *, family: str | None = None, vision: bool = True,
               **parts: Any) -> Recipe:
    arch = TinyArch(name=name, is_vision=vision, supports_video=False,
                    loader="mlx_vlm" if vision else "mlx_lm", family=family or name,
                    notes=notes)
    return Recipe(arch=arch, presets=("tiny",), **parts)
