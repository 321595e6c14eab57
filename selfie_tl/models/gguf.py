"""GGUF files to TransformerLens weights: dequantise with ``transformers``, convert as Llama."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformerConfig

from selfie_tl.errors import ModelLoadError
from selfie_tl.models.fetch import default_gguf_path


def load_hf_model_from_gguf(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """Dequantize a GGUF file into a ``transformers`` causal LM and its tokenizer.

    Args:
        path: a ``.gguf`` file.
        dtype: floating-point type of the dequantized weights.

    Returns:
        ``(hf_model, tokenizer)``.

    Raises:
        ModelLoadError: ``transformers`` could not read the file.

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
        hf_model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
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
    return load_hf_model_from_gguf(default_gguf_path(), dtype=dtype)


def llama_config_dict(hf_config: Any, model_name: str) -> dict[str, Any]:
    """HookedTransformerConfig arguments for a Llama-architecture Hugging Face config.

    Example:
        >>> from transformers import LlamaConfig
        >>> cfg = llama_config_dict(LlamaConfig(hidden_size=64, num_attention_heads=4), "m")
        >>> cfg["d_head"], cfg["normalization_type"], cfg["n_key_value_heads"]
        (16, 'RMS', None)
    """
    n_heads = hf_config.num_attention_heads
    n_kv = getattr(hf_config, "num_key_value_heads", None) or n_heads
    d_head = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads
    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    if rope.get("rope_type", "default") not in ("default", None):
        raise ModelLoadError(
            f"rope_type {rope.get('rope_type')!r} is not supported for GGUF conversion; only 'default' is"
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


def convert_llama(
    hf_model: Any, dtype: torch.dtype, model_name: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """HookedTransformer config arguments and state dict for a Llama-architecture HF model."""
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    cfg_dict = llama_config_dict(hf_model.config, model_name=model_name)
    cfg = HookedTransformerConfig(**cfg_dict, dtype=dtype, device="cpu", init_weights=False)
    state_dict = {k: v.detach() for k, v in convert_llama_weights(hf_model, cfg).items()}
    return cfg_dict, state_dict


def check_finite(state_dict: dict[str, torch.Tensor], source: Path) -> None:
    """Refuse weights with NaN or infinity: the mark of a damaged GGUF file.

    Raises:
        ModelLoadError: naming ``source`` and the first bad tensors.

    Example:
        >>> check_finite({"w": torch.tensor([1.0, float("nan")])}, Path("m.gguf"))
        Traceback (most recent call last):
        ...
        selfie_tl.errors.ModelLoadError: converting m.gguf gave NaN or infinite weights in ['w'] ...
    """
    bad = [name for name, t in state_dict.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ModelLoadError(
            f"converting {source} gave NaN or infinite weights in {bad[:5]} (of {len(bad)} tensors); "
            "the file is probably damaged: replace it with a good copy"
        )


def convert_gguf(path: Path, dtype: torch.dtype) -> tuple[dict[str, Any], dict[str, torch.Tensor], Any]:
    """Dequantise and convert a Llama GGUF file: ``(cfg_dict, state_dict, tokenizer)``.

    Raises:
        ModelLoadError: unreadable file, an architecture other than Llama, or weights that
            are not finite.
    """
    hf_model, tokenizer = load_hf_model_from_gguf(path, dtype=dtype)
    arch = hf_model.config.model_type
    if arch != "llama":
        raise ModelLoadError(f"GGUF architecture {arch!r} is not supported; only 'llama' is")
    cfg_dict, state_dict = convert_llama(hf_model, dtype, model_name=path.stem.split(".")[0])
    del hf_model
    check_finite(state_dict, path)
    return cfg_dict, state_dict, tokenizer


__all__ = [
    "check_finite",
    "convert_gguf",
    "convert_llama",
    "llama_config_dict",
    "load_default_hf_model",
    "load_hf_model_from_gguf",
]
