"""Tiny recipes for the families beyond the first six, one module per family.

Each module exports ``RECIPES: tuple[Recipe, ...]``; this package joins them in a fixed
order. Facts each recipe rests on (config keys, processor classes, what breaks) are in
the module's docstring.
"""

from __future__ import annotations

import importlib

from ..recipe import Recipe

# TEMPORARY while the family modules are written: missing ones are skipped.
_MODULES = ("text", "llava", "paligemma", "idefics", "pixtral", "mllama", "molmo", "phi3_v",
            "deepseek_vl2")


def _collect() -> tuple[Recipe, ...]:
    found: list[Recipe] = []
    for name in _MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        found.extend(module.RECIPES)
    return tuple(found)


ZOO_RECIPES: tuple[Recipe, ...] = _collect()
