"""Build (and cache) random-weight model folders of real architectures.

Contract:
- ``build_tiny_model(out_dir, arch, preset="tiny", seed=0, dtype="float32")`` writes a folder
  that the real loader opens offline (``mlx_vlm.load`` for vision archs, ``mlx_lm.load`` for
  text archs): config.json, generation_config.json, model.safetensors (mlx-format names,
  every parameter of the library's own model class), tokenizer.json, tokenizer_config.json
  (with chat_template), the family's processor JSON files and ``tiny_model.json`` (a
  manifest: arch, preset, seed, dtype, builder version, parameter count, special-token
  ids).  The same arguments and library versions give byte-identical files.
- ``quantize=4|8`` (both functions) gives the quantized copy made by the library's own
  convert path (:mod:`.quantize`); its manifest adds ``"quantize": bits`` and it is cached
  under its own name.
- ``ensure_tiny_model(arch, ...)`` builds once into a cache folder (atomic rename; a
  concurrent builder may win the race) and returns it; later calls only check existence.
Unknown arch / preset / dtype / quantize raise ValueError naming the valid choices.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from .archs import LM_SHAPES, check_choice
from .quantize import check_bits, convert_folder
from .recipe import Recipe
from .registry import RECIPES
from .tokenizer import build_tokenizer, tokenizer_json

BUILDER_VERSION = "1"
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
MANIFEST = "tiny_model.json"
INIT_GAIN = 2.0


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _vlm_model(config: dict):
    """Instantiate mlx-vlm's class for ``config`` exactly as mlx_vlm.utils.load_model does."""
    from mlx_vlm.utils import get_model_and_args, update_module_configs

    config = copy.deepcopy(config)
    model_class, _ = get_model_and_args(config=config)
    config.setdefault("text_config", config.pop("llm_config", {}))
    config.setdefault("vision_config", {})
    config.setdefault("audio_config", {})
    model_config = model_class.ModelConfig.from_dict(config)
    modules = ["text", "vision", "perceiver", "projector", "audio"]
    model_config = update_module_configs(model_config, model_class, config, modules)
    return model_class.Model(model_config)


def _lm_model(config: dict):
    """Instantiate mlx-lm's class for ``config`` exactly as mlx_lm.utils.load_model does."""
    from mlx_lm.utils import _get_classes

    model_class, args_class = _get_classes(config=copy.deepcopy(config))
    return model_class(args_class.from_dict(copy.deepcopy(config)))


def random_weights(recipe: Recipe, config: dict, seed: int, dtype: str) -> dict:
    """name -> mx.array for every parameter of the library's model class (seeded init).

    Uses explicit PRNG keys: the caller's global ``mx.random`` seed is neither read nor set.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    model = _vlm_model(config) if recipe.arch.loader == "mlx_vlm" else _lm_model(config)
    weights = _reinit(dict(tree_flatten(model.parameters())), seed)
    if recipe.fix_weights is not None:
        weights = recipe.fix_weights(weights, config)
    target = getattr(mx, dtype)
    weights = {k: v.astype(target) if v.dtype != target else v for k, v in weights.items()}
    mx.eval(weights)
    return weights


def _reinit(weights: dict, seed: int, gain: float = INIT_GAIN) -> dict:
    """Redraw every matrix (ndim >= 2) with std gain / sqrt(fan_in) from keys derived from
    ``seed`` alone; biases become zeros; norm weights keep the library's constant init.

    The libraries' default init leaves a random model's residual stream dominated by the
    input embedding, so greedy decoding of a tied-embedding model repeats one token; this
    init gives varied, input-dependent tokens (a useful oracle).
    """
    import mlx.core as mx

    names = sorted(k for k, v in weights.items() if v.ndim >= 2)
    keys = mx.random.split(mx.random.key(seed), max(2, len(names)))
    out = {k: mx.zeros_like(v) if k.endswith("bias") else v for k, v in weights.items()}
    for i, name in enumerate(names):
        shape = weights[name].shape
        fan_in = shape[0] if name.endswith("mm_input_projection_weight") else math.prod(shape[1:])
        bound = gain * math.sqrt(3.0 / fan_in)  # uniform: 4x faster than normal on CPU
        out[name] = mx.random.uniform(-bound, bound, shape, key=keys[i])
    return out


def _special_ids(tok, recipe: Recipe) -> dict[str, int]:
    spec = recipe.tokenizer
    names = spec.leading + spec.specials + spec.plain_added + spec.end_specials
    return {name: tok.token_to_id(name) for name in names}


def build_tiny_model(
    out_dir: str | Path,
    arch: str,
    preset: str = "tiny",
    *,
    seed: int = 0,
    dtype: str = "float32",
    quantize: int | None = None,
) -> Path:
    """Write the model folder for ``arch``/``preset`` into ``out_dir``; returns the path."""
    import mlx.core as mx

    if quantize is not None:
        return _build_quantized(Path(out_dir), arch, preset, seed, dtype, quantize)
    recipe = _recipe(arch, preset, dtype)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(recipe.tokenizer, LM_SHAPES[preset]["vocab"])
    ids = _special_ids(tok, recipe)
    config = recipe.config(preset, ids)
    config["torch_dtype"] = dtype
    weights = random_weights(recipe, config, seed, dtype)
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})

    _write_json(out / "config.json", config)
    _write_json(out / "generation_config.json", _generation_config(config))
    (out / "tokenizer.json").write_text(tokenizer_json(tok), encoding="utf-8")
    _write_json(out / "tokenizer_config.json", recipe.tokenizer_config)
    for name, data in recipe.processor_files(preset, config).items():
        _write_json(out / name, data)
    n_params = sum(v.size for k, v in weights.items() if k not in recipe.tied)
    manifest = {
        "arch": arch,
        "preset": preset,
        "seed": seed,
        "dtype": dtype,
        "builder_version": BUILDER_VERSION,
        "num_parameters": int(n_params),
        "special_token_ids": ids,
    }
    _write_json(out / MANIFEST, manifest)
    return out


def _build_quantized(out: Path, arch: str, preset: str, seed: int, dtype: str, bits: int
                     ) -> Path:
    """Build the float folder aside, then convert it into ``out``."""
    check_bits(bits)
    recipe = _recipe(arch, preset, dtype)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".float.", dir=out.parent) as tmp:
        src = build_tiny_model(tmp, arch, preset, seed=seed, dtype=dtype)
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
        convert_folder(src, out, bits, recipe.arch.loader)
    _write_json(out / MANIFEST, {**manifest, "quantize": bits})
    return out


def _recipe(arch: str, preset: str, dtype: str) -> Recipe:
    """The recipe for ``arch``; ValueError naming the valid choices for a bad argument."""
    check_choice("architecture", arch, list(RECIPES))
    check_choice("preset", preset, RECIPES[arch].presets)
    check_choice("dtype", dtype, DTYPES)
    return RECIPES[arch]


def _generation_config(config: dict) -> dict:
    """Only token ids: no sampling defaults, so loaders decode greedily unless told."""
    text = config.get("text_config", config)
    bos = config.get("bos_token_id", text.get("bos_token_id"))
    eos = config.get("eos_token_id", text.get("eos_token_id"))
    eos = eos if isinstance(eos, list) else [eos]
    if config["model_type"] in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3"):
        eos = eos + [bos]  # Qwen instruct models stop on <|im_end|> and <|endoftext|>
    pad = config.get("pad_token_id", bos)
    return {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vllm-mlx/tiny-models`` (``~/.cache`` when XDG_CACHE_HOME is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vllm-mlx" / "tiny-models"


def _lib_tag() -> str:
    """Short tag of the library versions the weights/tokenizer depend on."""
    import hashlib

    versions = []
    for dist in ("mlx", "mlx-lm", "mlx-vlm", "tokenizers"):
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}=?")
    return hashlib.sha256(";".join(versions).encode()).hexdigest()[:8]


def cache_name(arch: str, preset: str, dtype: str, seed: int, quantize: int | None = None
               ) -> str:
    quant = f"-q{quantize}" if quantize is not None else ""
    return f"{arch}-{preset}-{dtype}{quant}-seed{seed}-v{BUILDER_VERSION}-{_lib_tag()}"


def tiny_model_folder(arch: str, preset: str = "tiny", *, cache_dir: str | Path | None = None,
                      seed: int = 0, dtype: str = "float32",
                      quantize: int | None = None) -> Path:
    """Where :func:`ensure_tiny_model` keeps the folder for these arguments (built or not)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / cache_name(arch, preset, dtype, seed, quantize)


def ensure_tiny_model(
    arch: str,
    preset: str = "tiny",
    *,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    dtype: str = "float32",
    quantize: int | None = None,
) -> Path:
    """Return the cached folder for these arguments, building it once if missing."""
    _recipe(arch, preset, dtype)
    check_bits(quantize)
    final = tiny_model_folder(arch, preset, cache_dir=cache_dir, seed=seed, dtype=dtype,
                              quantize=quantize)
    root = final.parent
    if (final / MANIFEST).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        os.chmod(tmp, 0o755)
        build_tiny_model(tmp, arch, preset, seed=seed, dtype=dtype, quantize=quantize)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
