"""``load_model``: check the arguments, then dispatch on the kind of source.

Sources: ``None`` (the embedded default), a ``.gguf`` path, a local Hugging Face directory,
a TransformerLens model name. GGUF sources go through the converted-model cache
(:mod:`selfie_tl.models.cache`), which verifies each entry and rebuilds damaged ones.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError, ModelLoadError, UnknownModelError
from selfie_tl.models import fetch, gguf
from selfie_tl.models.build import build_hooked
from selfie_tl.models.cache import (
    cache_dir,
    converted_cache_key,
    open_entry,
    remove_stale,
    save_converted,
)
from selfie_tl.models.cache import warn as cache_warn
from selfie_tl.models.fetch import DEFAULT_MODEL_NAME, GGUF_MEMBER
from selfie_tl.models.layout import optimize_layout
from selfie_tl.models.tokenizer import attach_tokenizer, tokenizer_adds_bos

logger = logging.getLogger("selfie_tl.models")  # one logger for the package

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


def check_name(name: Any) -> str | os.PathLike | None:
    """``name`` if it is ``None``, a non-empty string or a path.

    Example:
        >>> check_name(123)
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: model name must be None, a string or a path, got 123 (int)
    """
    if name is None:
        return None
    if not isinstance(name, str | os.PathLike):
        raise InvalidArgumentError(
            f"model name must be None, a string or a path, got {name!r} ({type(name).__name__})"
        )
    if str(name).strip() == "":
        raise InvalidArgumentError(f"model name must not be empty, got {name!r}; use None for the default")
    return name


def check_device(device: Any) -> torch.device | None:
    """Parse ``device`` and check that this torch build can use it, before any work.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("banana")
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: device 'banana' is not a torch device ...
    """
    if device is None:
        return None
    if not isinstance(device, str | torch.device | int) or isinstance(device, bool):
        raise InvalidArgumentError(
            f"device must be None, a string such as 'cpu' or 'cuda:0', or a torch.device, got {device!r}"
        )
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"device {device!r} is not a torch device ({exc}); use 'cpu', 'cuda', 'cuda:0' or 'mps'"
        ) from exc
    if parsed.type == "cpu":
        return parsed
    if parsed.type == "meta":
        raise InvalidArgumentError("device 'meta' holds no weights; use 'cpu' or an accelerator")
    backend = getattr(torch.backends, parsed.type, None) if parsed.type == "mps" else None
    module = backend or getattr(torch, parsed.type, None)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        raise InvalidArgumentError(
            f"device {device!r} is not available with this torch build (torch {torch.__version__}, "
            f"torch.{parsed.type}.is_available() is False); use device='cpu'"
        )
    count = getattr(module, "device_count", None)
    if parsed.index is not None and count is not None and parsed.index >= count():
        raise InvalidArgumentError(f"device {device!r}: only {count()} {parsed.type} device(s) present")
    return parsed


def check_dtype(dtype: Any) -> torch.dtype:
    """A supported floating-point dtype from a ``torch.dtype`` or its name.

    Example:
        >>> check_dtype("bfloat16"), check_dtype(torch.float16)
        (torch.bfloat16, torch.float16)
        >>> check_dtype(torch.int64)
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: dtype torch.int64 is not supported; ...
    """
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.removeprefix("torch.")]
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    raise InvalidArgumentError(
        f"dtype {dtype!r} is not supported; use one of torch.float32 (default), torch.bfloat16, "
        f"torch.float16, torch.float64, or their names {list(_DTYPES)}"
    )


def _load_cached_gguf(
    key: str,
    get_gguf: Callable[[], Path],
    device: torch.device | None,
    dtype: torch.dtype,
    verbose: bool,
    rebuild: bool,
) -> HookedTransformer:
    """Load the converted entry ``key``, verified; convert from ``get_gguf()`` when missing or damaged."""
    root = cache_dir()
    converted = root / "converted"
    for folder in (converted, root / "gguf"):
        for path in remove_stale(folder):
            logger.info("removed stale cache leftover %s", path)
    entry = converted / key
    try:
        replace_inode = entry.stat().st_ino  # replace only this folder, never a newer one
    except FileNotFoundError:
        replace_inode = None
    if replace_inode is not None and not rebuild:
        try:
            found = open_entry(entry)
            return build_hooked(
                found.cfg_dict, found.weights, found.tokenizer, device, dtype,
                weights_sha256=found.weights_sha256,
            )  # fmt: skip
        except ModelLoadError as exc:
            reason = str(exc).removeprefix(f"{entry}: ")
            cache_warn(f"selfie_tl: the model cache entry {entry} is damaged ({reason}); rebuilding it")
    source = get_gguf()
    if verbose:
        print(f"selfie_tl: converting {source.name} (first load only; cached afterwards)", file=sys.stderr)
    cfg_dict, state_dict, tokenizer = gguf.convert_gguf(source, dtype)
    try:
        save_converted(entry, cfg_dict, state_dict, tokenizer, replace_inode=replace_inode)
    except OSError as exc:
        try:
            now = entry.stat().st_ino
        except OSError:
            now = None
        if now is None or now == replace_inode:  # else another process saved a new entry meanwhile
            cache_warn(
                f"selfie_tl: could not write the model cache entry {entry} ({exc}); the model was "
                "converted in memory and will be converted again on the next load. Make the "
                "folder writable or set SELFIE_TL_CACHE to a writable folder"
            )
    return build_hooked(cfg_dict, state_dict, tokenizer, device, dtype)


def _load_default(device: torch.device | None, dtype: torch.dtype, verbose: bool, rebuild: bool):
    override = fetch.override_gguf_path()
    if override is not None:
        return _load_gguf_file(override, device, dtype, verbose, rebuild)
    # The shipped file's digest is known: warm loads need neither the GGUF nor its hash.
    key = converted_cache_key(Path(GGUF_MEMBER).stem, fetch.GGUF_SHA256, dtype)
    return _load_cached_gguf(key, fetch.fetch_default_gguf, device, dtype, verbose, rebuild)


def _load_gguf_file(path: Path, device, dtype, verbose: bool, rebuild: bool) -> HookedTransformer:
    cache_dir()  # a cache path that is a file is reported before the file is hashed
    digest = fetch.check_gguf(path)  # the key follows the content; known names are verified
    key = converted_cache_key(path.stem, digest, dtype)
    return _load_cached_gguf(key, lambda: path, device, dtype, verbose, rebuild)


def _load_hf_directory(path: Path, device: Any, dtype: torch.dtype) -> HookedTransformer:
    from transformer_lens import loading_from_pretrained as loading
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:
        raise ModelLoadError(f"could not read Hugging Face directory {path}: {exc}") from exc
    hf_model.eval()
    if hf_model.config.model_type == "llama":
        # The same conversion as GGUF files; TransformerLens' directory loader infers the
        # architecture from the path name, which breaks for paths containing "llama".
        cfg_dict, state_dict = gguf.convert_llama(hf_model, dtype, model_name=path.name)
        return build_hooked(cfg_dict, state_dict, tokenizer, device, dtype)
    try:
        cfg = loading.get_pretrained_model_config(
            str(path), hf_cfg=hf_model.config.to_dict(), fold_ln=False, dtype=dtype,
            device=str(device) if device is not None else "cpu",
            default_prepend_bos=tokenizer_adds_bos(tokenizer),
        )  # fmt: skip
        state_dict = loading.get_pretrained_state_dict(str(path), cfg, hf_model, dtype=dtype)
    except Exception as exc:
        raise ModelLoadError(
            f"TransformerLens could not convert the {hf_model.config.model_type!r} model in {path}: {exc}"
        ) from exc
    model = HookedTransformer(cfg, move_to_device=True)
    attach_tokenizer(model, tokenizer)
    model.load_and_process_state_dict(
        state_dict, fold_ln=False, center_writing_weights=False, center_unembed=False,
        fold_value_biases=False, refactor_factored_attn_matrices=False,
    )  # fmt: skip
    model.eval()
    return optimize_layout(model)


def _load_transformer_lens_name(name: str, device: Any, dtype: torch.dtype) -> HookedTransformer:
    from transformer_lens import loading_from_pretrained as loading

    try:
        loading.get_official_model_name(name)
    except ValueError as exc:
        raise UnknownModelError(
            f"unknown model {name!r}: expected None (the embedded default "
            f"{DEFAULT_MODEL_NAME}), a path to a .gguf file, a local Hugging Face model "
            "directory, or a TransformerLens model name (see "
            "transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES)"
        ) from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer.from_pretrained_no_processing(name, device=device, dtype=dtype)
    try:  # undo TransformerLens' add_bos_token reload (see attach_tokenizer)
        from transformers import AutoTokenizer

        attach_tokenizer(model, AutoTokenizer.from_pretrained(model.cfg.tokenizer_name))
    except Exception as exc:  # noqa: BLE001 - keep TransformerLens' tokenizer if the original cannot load
        logger.warning("kept TransformerLens' tokenizer for %s: %s", name, exc)
    model.eval()
    return optimize_layout(model)


def load_model(
    name: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    *,
    dtype: str | torch.dtype = torch.float32,
    verbose: bool = False,
    rebuild: bool = False,
) -> HookedTransformer:
    """Load a model as a :class:`~transformer_lens.HookedTransformer`, ready for SelfIE.

    Arguments are checked before any download or conversion starts. GGUF sources (the
    default included) are converted once and cached; each later load verifies the cached
    entry (sizes, SHA-256 of every file) and rebuilds it, with a
    :class:`~selfie_tl.models.CacheWarning`, when it is damaged.

    Args:
        name: ``None`` for the embedded default (SmolLM2-135M-Instruct), a ``.gguf`` path,
            a local Hugging Face model directory, or a TransformerLens model name.
        device: torch device (default CPU, or what TransformerLens picks for hub names).
        dtype: ``torch.float32`` (default), ``torch.bfloat16``, ``torch.float16`` or
            ``torch.float64``, or their names.
        verbose: print a line when a slow first-time conversion starts.
        rebuild: convert again and replace the cache entry even if it verifies (GGUF
            sources only).

    Returns:
        The model in eval mode, unprocessed (residual stream equals Hugging Face's
        ``hidden_states``), with ``cfg.default_prepend_bos`` following the tokenizer.

    Raises:
        InvalidArgumentError: ``name``, ``device`` or ``dtype`` is not usable (wrong type,
            unknown device, device this torch build lacks, non-floating dtype).
        UnknownModelError: ``name`` matches none of the accepted forms.
        ModelLoadError: fetching or converting failed, or the cache path is not a folder
            (message says why).
        ChecksumMismatchError: the default model's download, or a GGUF file named like the
            published one, failed verification.

    Example:
        >>> load_model(device="banana")
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: device 'banana' is not a torch device ...
        >>> model = load_model()  # doctest: +SKIP
        >>> model.cfg.n_layers  # doctest: +SKIP
        30
    """
    name = check_name(name)
    device = check_device(device)
    dtype = check_dtype(dtype)
    if not isinstance(rebuild, bool) or not isinstance(verbose, bool):
        raise InvalidArgumentError(f"rebuild and verbose must be bools, got {rebuild!r} and {verbose!r}")
    start = time.perf_counter()
    if name is None or str(name) == DEFAULT_MODEL_NAME:
        model = _load_default(device, dtype, verbose, rebuild)
    else:
        path = Path(name).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise UnknownModelError(f"GGUF file {str(name)!r} does not exist")
            model = _load_gguf_file(path, device, dtype, verbose, rebuild)
        elif path.is_dir():
            if not (path / "config.json").exists():
                raise UnknownModelError(
                    f"directory {str(name)!r} has no config.json; expected a Hugging Face model directory"
                )
            model = _load_hf_directory(path, device, dtype)
        else:
            model = _load_transformer_lens_name(str(name), device, dtype)
    logger.info("loaded %s in %.1f s", model.cfg.model_name, time.perf_counter() - start)
    return model


__all__ = ["check_device", "check_dtype", "check_name", "load_model"]
