"""Diffusers / transformers checkpoint names and layouts <-> this package's MLX modules.

Contract: the modules use the checkpoints' own parameter names, so the mapping is only about
layout: PyTorch convolution weights ``(O, I, T, H, W)`` / ``(O, I, H, W)`` become channel-last
``(O, T, H, W, I)`` / ``(O, H, W, I)``, and the VAE's broadcastable RMS gammas ``(C, 1, 1[, 1])``
become ``(C,)``. ``to_mlx`` / ``to_torch`` are exact inverses (the tiny builder saves with
``to_torch`` so its files look like real checkpoints). ``load_component`` reads every
``*.safetensors`` of a component folder (sharded or not), converts, casts to ``dtype`` and
loads strictly: missing or unexpected names raise ``ValueError`` naming a few of them.
Known extras of real checkpoints are dropped (``norm_added_q`` of Wan I2V, the tied
``encoder.embed_tokens`` copy of umT5, CLIP's unused text / projection heads).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar, cast

from mlx.utils import tree_flatten

from ._mlx import mx, nn

M = TypeVar("M", bound=nn.Module)

_IGNORED = ("norm_added_q.", "encoder.embed_tokens.", "position_ids", "text_model.", "logit_scale")


def _is_conv(name: str, ndim: int) -> bool:
    return name.endswith("weight") and ndim in (4, 5)


def to_mlx(name: str, array: mx.array) -> mx.array:
    """PyTorch-layout checkpoint tensor -> this package's layout."""
    if _is_conv(name, array.ndim):
        return array.transpose(0, *range(2, array.ndim), 1)
    if name.endswith("gamma") and array.ndim > 1:
        return array.reshape(-1)
    return array


def to_torch(name: str, array: mx.array) -> mx.array:
    """This package's layout -> the checkpoint's PyTorch layout (inverse of ``to_mlx``)."""
    if _is_conv(name, array.ndim):
        return array.transpose(0, array.ndim - 1, *range(1, array.ndim - 1))
    if name.endswith("gamma"):
        extra = 2 if name.endswith(".norm.gamma") else 3  # attention-block norms are 2D
        return array.reshape(array.shape[0], *([1] * extra))
    return array


def read_safetensors(folder: Path) -> dict[str, mx.array]:
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {folder}")
    weights: dict[str, mx.array] = {}
    for file in files:
        loaded = mx.load(str(file))
        if not isinstance(loaded, dict):  # a .safetensors file always loads as a dict
            raise ValueError(f"{file} did not load as a name -> array mapping")
        weights.update(loaded)
    return weights


def _named_parameters(model: nn.Module) -> list[tuple[str, mx.array]]:
    # without ``destination``, ``tree_flatten`` returns a list (its stub says list-or-dict)
    return cast(list[tuple[str, mx.array]], tree_flatten(model.parameters()))


def _check_names(model: nn.Module, names: set[str], folder: Path) -> None:
    expected = {k for k, _ in _named_parameters(model)}
    missing, unexpected = sorted(expected - names), sorted(names - expected)
    if missing or unexpected:
        raise ValueError(
            f"weights in {folder} do not match the model: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )


def load_component(model: M, folder: Path, dtype: mx.Dtype = mx.float32) -> M:
    """Load a component folder's safetensors into ``model`` (strict, converted, cast)."""
    raw = read_safetensors(folder)
    if "shared.weight" not in raw and "encoder.embed_tokens.weight" in raw:
        raw["shared.weight"] = raw["encoder.embed_tokens.weight"]
    weights = {
        name: to_mlx(name, value).astype(dtype)
        for name, value in raw.items()
        if not any(part in name for part in _IGNORED)
    }
    _check_names(model, set(weights), folder)
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    return model


def torch_state(model: nn.Module) -> dict[str, mx.array]:
    """The model's parameters, named and laid out as in a Diffusers checkpoint."""
    return {name: to_torch(name, value) for name, value in _named_parameters(model)}
