"""``/v1/models`` and its load / unload actions, without the web framework.

:func:`model_list` gives one card per model the server may serve, the default first. A
loaded model's card says what its loaded config says (capabilities, context, quantization,
every name it answers to); a model not loaded shows its kind and size from its files. Every
card carries ``state`` (``loaded``, ``loading``, ``available``, ``failed``, with ``error``),
``kind`` (text / vision), ``size_bytes``, ``default`` and ``endpoints`` (the routes that
serve it: chat, completions, and the features built on chat). :func:`model_card` finds one by
any of its names (404 otherwise); :func:`load_model` / :func:`unload_model` change a
model's state and return its card.
"""

from __future__ import annotations

from typing import Any

from ..engine.registry import ModelStatus
from .prompted_tools import known_tool_profile, tool_profile
from .protocol import ModelCapabilities, ModelCard, ModelList
from .serving_common import ServingContext


def _loaded_fields(ctx: ServingContext, status: ModelStatus, names: list[str]
                   ) -> dict[str, Any]:
    assert status.engine is not None
    loaded = status.engine.model
    caps = loaded.capabilities
    extra = ctx.extra_names if status.default else ()
    tools = tool_profile(loaded, ctx.settings.tool_call_parser)  # known: see _profiles_known
    return {
        "root": str(loaded.path),
        "aliases": [a for a in dict.fromkeys([*caps.aliases, *extra, *names])
                    if a != "default" or status.default],  # only the default answers to it
        "capabilities": ModelCapabilities(
            vision=caps.vision, video=caps.video, native_video=caps.native_video,
            max_context=caps.context_length, input_modalities=list(caps.input_modalities),
            max_images_per_request=caps.max_images, model_type=caps.model_type or None,
            quantization_bits=caps.quantization_bits, tools=tools.how,  # type: ignore[arg-type]
            tool_call_format=tools.format.name),
        "max_model_len": caps.context_length, "random_weights": loaded.random_weights,
    }


def _unloaded_fields(status: ModelStatus, names: list[str]) -> dict[str, Any]:
    vision = status.spec.kind == "vision"
    return {"root": status.spec.reference, "aliases": names,
            "capabilities": ModelCapabilities(
                vision=vision, video=False, native_video=False,
                input_modalities=["text", "image"] if vision else ["text"])}


def _card(ctx: ServingContext, status: ModelStatus) -> ModelCard:
    names = [n for n in ctx.registry.names(status.spec.name) if n != status.spec.name]
    fields = (_loaded_fields(ctx, status, names) if status.engine is not None
              else _unloaded_fields(status, names))
    group = ctx.settings.group_size if status.default else 1
    parallel = ctx.settings.parallel_mode if status.default else "none"
    return ModelCard(id=status.spec.name, group_size=group, parallel=parallel,  # type: ignore[arg-type]
                     endpoints=list(ctx.endpoints), **fields, **_state_fields(status))


async def _profiles_known(ctx: ServingContext) -> None:
    """Work out the loaded models' tool profiles off the event loop (a probe render of
    each template, once per model), so that their cards are built without blocking."""
    parser = ctx.settings.tool_call_parser
    for status in ctx.registry.statuses():
        if status.engine is not None and known_tool_profile(status.engine.model,
                                                            parser) is None:
            await ctx.checks.run(tool_profile, status.engine.model, parser)


async def model_list(ctx: ServingContext) -> ModelList:
    await _profiles_known(ctx)
    return ModelList(data=[_card(ctx, s) for s in ctx.registry.statuses()])


async def model_card(ctx: ServingContext, name: str) -> ModelCard:
    """The card of the model ``name`` names; 404 for any other name."""
    served = ctx.registry.canonical(name)
    await _profiles_known(ctx)
    return next(_card(ctx, s) for s in ctx.registry.statuses() if s.spec.name == served)


async def load_model(ctx: ServingContext, name: str) -> ModelCard:
    """Load ``name`` now (or retry one that failed); its card after."""
    status = await ctx.registry.load(name)
    await _profiles_known(ctx)
    return _card(ctx, status)


async def unload_model(ctx: ServingContext, name: str) -> ModelCard:
    """Unload ``name`` (409 when it is the default or has requests in flight)."""
    return _card(ctx, await ctx.registry.unload(name))


def _state_fields(status: ModelStatus) -> dict[str, Any]:
    """The fields ``/v1/models`` adds to a model's card."""
    kind = status.spec.kind
    if status.engine is not None:
        kind = "vision" if status.engine.model.is_vision else "text"
    return {"state": status.state.value, "kind": kind, "size_bytes": status.size_bytes,
            "error": status.error, "default": status.default, "created": status.created}
