"""Resolve a model reference to a folder and load it with mlx-lm or mlx-vlm.

A reference is ``tiny:ARCH[:PRESET][:q4|:q8]`` (a random-weight model built locally on first
use, optionally quantized),
a local folder, or a Hugging Face repo id (downloaded into the Hub cache). The folder's
``config.json`` is read *before* loading so detection decides which library loads it.

A repo id fails fast, in one line, when it cannot be had: :func:`check_hub_reference` looks
in the local cache first; offline (``HF_HUB_OFFLINE=1``) a missing model is an error at
once, online the Hub is asked once with a short timeout (no retries). An unreachable Hub
with a cached copy switches this process to offline mode (the copy is served); without one
the error says how to download the model or run offline. A download shows
huggingface_hub's progress bars.
Must run on the engine's owner thread: MLX arrays belong to the thread that made them.

With ``LoadOptions.group`` (an ``mx.distributed`` group of two or more processes) each
process loads only its shard: text models through mlx-lm's ``sharded_load`` (tensor or
pipeline parallel), vision-language models by the language model's own ``shard()`` in
mlx-vlm (tensor parallel only; the vision tower stays whole on every process).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .detect import (
    Capabilities,
    Detection,
    ModelKind,
    context_length,
    detect_model_kind,
    max_images,
    quantization_bits,
    supports_native_video,
)
from .errors import ModelLoadError
from .loaded import LoadedModel, LoadOptions

logger = logging.getLogger(__name__)

TINY_PREFIX = "tiny:"
TINY_MANIFEST = "tiny_model.json"  # written by vllm_mlx.tiny next to random weights
HUB_PROBE_TIMEOUT_S = 5.0  # one metadata request; an unreachable Hub fails within this
OFFLINE = "offline"  # _not_cached's reason when HF_HUB_OFFLINE is set
_checked: set[str] = set()  # repo ids check_hub_reference passed (the Hub is asked once)


def _grammar_compiler(loaded: LoadedModel) -> Any:
    """The JSON-constraint compiler of ``loaded`` (injected into it: see ``loaded.py``)."""
    from .constrained import GrammarCompiler
    from .tokens import eos_token_ids

    return GrammarCompiler(loaded.tokenizer, loaded.vocab_size, eos_token_ids(loaded))


def resolve_model_path(reference: str, options: LoadOptions) -> tuple[Path, bool]:
    """The local folder for ``reference``, and whether it holds random weights."""
    if reference.startswith(TINY_PREFIX):
        from ..tiny import ensure_tiny_model
        from ..tiny.quantize import parse_reference

        try:
            arch, preset, bits = parse_reference(reference[len(TINY_PREFIX):])
            path = ensure_tiny_model(arch, preset, cache_dir=options.tiny_cache_dir,
                                     quantize=bits)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from exc
        return Path(path), True
    local = Path(reference).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelLoadError(f"{local} has no config.json: not a model folder")
        return local.resolve(), (local / TINY_MANIFEST).is_file()
    if not looks_like_repo_id(reference):
        raise ModelLoadError(
            f"model '{reference}' is neither an existing folder nor a Hugging Face repo id "
            "(owner/name); for a built-in test model use tiny:ARCH, e.g. tiny:qwen2_vl"
        )
    return _download(reference), False


def looks_like_repo_id(reference: str) -> bool:
    """``owner/name`` that is not a local path or a tiny model."""
    return (not reference.startswith((TINY_PREFIX, ".", "/", "~"))
            and reference.count("/") == 1 and not Path(reference).expanduser().exists())


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _go_offline() -> None:
    """Serve cached files only from now on, in this process (huggingface_hub reads the
    flag on every request; transformers and mlx load local folders)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True


def cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id``, without touching the network."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), or a broken cache entry
        return None


def _not_cached(repo_id: str, why: str) -> str:
    fetch = f"`hf download {repo_id}`"
    if why == OFFLINE:
        return (f"model '{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 "
                f"is set: download it first with {fetch}, or unset HF_HUB_OFFLINE")
    return (f"model '{repo_id}' is not in the local Hugging Face cache and {why}: download "
            f"it while online with {fetch}, then run offline with HF_HUB_OFFLINE=1")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _probe_hub(repo_id: str) -> str | None:
    """One request for the repo's metadata: None when it can be downloaded, else why not.
    Raises :class:`ModelLoadError` for a repo the Hub does not give (missing, gated)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError as exc:
        raise ModelLoadError(f"model '{repo_id}' is gated on the Hugging Face Hub: accept its "
                             "terms on its page and log in with `hf auth login`") from exc
    except RepositoryNotFoundError as exc:
        raise ModelLoadError(f"model '{repo_id}' was not found on the Hugging Face Hub (a "
                             "private repo needs `hf auth login`)") from exc
    except HfHubHTTPError as exc:
        return f"the Hub answered: {_first_line(exc)}"
    except Exception as exc:  # httpx connect/timeout errors, OSError: the Hub is unreachable
        return f"the Hub cannot be reached ({_first_line(exc)})"
    return None


def check_hub_reference(reference: str) -> None:
    """Fail fast (:class:`ModelLoadError`, one line) when the repo id ``reference`` is
    neither cached nor downloadable; an unreachable Hub with a cached copy turns this
    process offline. Other references pass unchecked. Asks the Hub at most once a repo."""
    if not looks_like_repo_id(reference) or reference in _checked:
        return
    cached = cached_snapshot(reference)
    if _hub_offline():
        if cached is None:
            raise ModelLoadError(_not_cached(reference, OFFLINE))
    elif (unreachable := _probe_hub(reference)) is not None:
        if cached is None:
            raise ModelLoadError(_not_cached(reference, unreachable))
        logger.warning("%s; serving the cached copy of %s offline", unreachable, reference)
        _go_offline()
    _checked.add(reference)


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import enable_progress_bars

    check_hub_reference(repo_id)
    patterns = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py"]
    if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") is None:  # the user's choice wins
        enable_progress_bars()  # a download of gigabytes shows that it moves
    try:
        return Path(snapshot_download(repo_id=repo_id, allow_patterns=patterns))
    except Exception as exc:  # hub errors are many and untyped for our purpose
        raise ModelLoadError(
            f"could not fetch '{repo_id}' from the Hugging Face Hub: {_first_line(exc)}"
        ) from exc


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path / 'config.json'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path / 'config.json'} is not a JSON object")
    return data


def build_capabilities(
    config: Mapping[str, Any], detection: Detection, served_name: str, reference: str
) -> Capabilities:
    vision = detection.kind is ModelKind.VISION
    native_video = vision and supports_native_video(config)
    aliases = tuple(dict.fromkeys(a for a in ("default", reference) if a != served_name))
    return Capabilities(
        vision=vision,
        video=vision,  # models without native video get sampled frames as images
        native_video=native_video,
        context_length=context_length(config),
        model_type=str(config.get("model_type", "")),
        served_name=served_name,
        aliases=aliases,
        quantization_bits=quantization_bits(config),
        max_images=max_images(config) if vision else None,
    )


def load_model(reference: str, options: LoadOptions | None = None) -> LoadedModel:
    """Resolve, detect and load; raises :class:`ModelLoadError` with a readable cause."""
    options = options or LoadOptions()
    path, random_weights = resolve_model_path(reference, options)
    config = read_config(path)
    detection = detect_model_kind(config, reference, options.force_kind)
    logger.info("loading %s from %s as %s (%s)", reference, path, detection.kind.value,
                detection.reason)
    if options.group is not None and options.group.size() > 1:
        if options.shard is None:
            raise ModelLoadError("a distributed group needs LoadOptions.shard to load with")
        model, processor, tokenizer = options.shard(path, config, detection.kind, options)
    else:
        model, processor, tokenizer = _load_whole(reference, path, detection.kind, options)
    served = options.served_name or reference
    return LoadedModel(
        reference=reference, path=path, model=model, processor=processor, tokenizer=tokenizer,
        config=config, detection=detection,
        capabilities=build_capabilities(config, detection, served, reference),
        random_weights=random_weights, grammar=_grammar_compiler,
    )


def _load_whole(reference: str, path: Path, kind: ModelKind, options: LoadOptions
                ) -> tuple[Any, Any, Any]:
    """(model, processor, tokenizer) from mlx-vlm or mlx-lm, the whole model here."""
    try:
        if kind is ModelKind.VISION:
            import mlx_vlm

            from .processor_fixes import fix_processor

            model, processor = mlx_vlm.load(str(path), trust_remote_code=options.trust_remote_code)
            processor = fix_processor(processor)  # LLaVA's processor under transformers 5
            return model, processor, getattr(processor, "tokenizer", processor)
        import mlx_lm

        trust = options.trust_remote_code
        loaded = mlx_lm.load(str(path), tokenizer_config={"trust_remote_code": trust},
                             trust_remote_code=trust)
        return loaded[0], loaded[1], loaded[1]
    except Exception as exc:  # library load failures carry no common type
        raise ModelLoadError(f"failed to load {reference} from {path}: {exc}") from exc
