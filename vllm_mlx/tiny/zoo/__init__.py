"""Tiny recipes for the families beyond the first six, one module per family.

Each module exports ``RECIPES: tuple[Recipe, ...]``; this package joins them in a fixed
order. Facts each recipe rests on (config keys, processor classes, what breaks) are in
the module's docstring.
"""

from __future__ import annotations

from ..recipe import Recipe
from . import deepseek_vl2, idefics, llava, mllama, molmo, paligemma, phi3_v, pixtral, text

ZOO_RECIPES: tuple[Recipe, ...] = tuple(
    recipe
    for module in (text, llava, paligemma, idefics, pixtral, mllama, molmo, phi3_v, deepseek_vl2)
    for recipe in module.RECIPES
)
