"""Every architecture the tiny builder knows, as :class:`~.recipe.Recipe` by name.

The first six (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Gemma 3, Qwen3, Llama) are described in
:mod:`.archs` and :mod:`.families`; every other family has its own module in
:mod:`.zoo`. ``ARCHITECTURES`` (name -> ``TinyArch``) is the public view.
"""

from __future__ import annotations

from functools import partial

from . import families
from .archs import BASE_ARCHITECTURES, model_config
from .recipe import Recipe, TinyArch, Weights, gemma_embeddings
from .zoo import ZOO_RECIPES


def _gemma3_weights(weights: Weights, config: dict) -> Weights:
    """Embeddings shrunk for Gemma's scale; the lm_head tied as mlx-vlm does on load."""
    name = "language_model.model.embed_tokens.weight"
    emb = gemma_embeddings(weights, name)
    return {**weights, name: emb, "language_model.lm_head.weight": emb}


def _base_recipe(arch: TinyArch) -> Recipe:
    gemma = arch.name == "gemma3"
    return Recipe(
        arch=arch,
        config=partial(model_config, arch.name),
        tokenizer=families.tokenizer_spec(arch.family),
        tokenizer_config=families.tokenizer_config(arch.family),
        processor_files=partial(families.processor_files, arch.name, arch.family),
        fix_weights=_gemma3_weights if gemma else None,
        tied=frozenset({"language_model.lm_head.weight"}) if gemma else frozenset(),
    )


RECIPES: dict[str, Recipe] = {
    r.name: r for r in (*map(_base_recipe, BASE_ARCHITECTURES.values()), *ZOO_RECIPES)
}
ARCHITECTURES: dict[str, TinyArch] = {name: r.arch for name, r in RECIPES.items()}
