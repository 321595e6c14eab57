"""Building a HookedTransformer from config arguments and weights, one tensor at a time."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from selfie_tl.errors import ChecksumMismatchError, ModelLoadError
from selfie_tl.models.layout import allocate_fast_layout
from selfie_tl.models.safetensors_io import read_index, read_into
from selfie_tl.models.tokenizer import attach_tokenizer, tokenizer_adds_bos


def build_hooked(
    cfg_dict: dict[str, Any],
    weights: dict[str, torch.Tensor] | Path,
    tokenizer: Any,
    device: str | torch.device | None,
    dtype: torch.dtype,
    *,
    weights_sha256: str | None = None,
) -> HookedTransformer:
    """Build the HookedTransformer and fill it from a state dict or a safetensors file.

    The parameters get their fast layout (:func:`~selfie_tl.models.optimize_layout`) while
    still uninitialised, and weights are copied in one tensor at a time, so loading never
    holds two copies of the model in memory.

    Args:
        cfg_dict: ``HookedTransformerConfig`` arguments (without dtype/device).
        weights: parameter name -> tensor, or a safetensors file with those names.
        tokenizer: attached as it is (:func:`~selfie_tl.models.attach_tokenizer`).
        device: where the model lives (``None``: CPU).
        dtype: parameter dtype.
        weights_sha256: for a file, its expected SHA-256, computed on the bytes as they are
            read (no second pass).

    Raises:
        ModelLoadError: the config is invalid or the weights do not fit it.
        ChecksumMismatchError: the file's SHA-256 differs from ``weights_sha256``.

    Example:
        >>> from selfie_tl.testing import tiny_model, tiny_tokenizer
        >>> ref = tiny_model("llama", n_layers=1)
        >>> cfg = dict(n_layers=1, d_model=64, d_head=16, n_heads=4, d_mlp=128, d_vocab=259,
        ...            n_ctx=512, act_fn="silu", normalization_type="RMS", gated_mlp=True,
        ...            positional_embedding_type="rotary", rotary_dim=16, n_key_value_heads=2,
        ...            final_rms=True)
        >>> model = build_hooked(cfg, dict(ref.named_parameters()), tiny_tokenizer(), None, torch.float32)
        >>> bool(torch.equal(model.blocks[0].attn.W_Q, ref.blocks[0].attn.W_Q))
        True
    """
    try:
        cfg = HookedTransformerConfig(
            **cfg_dict,
            dtype=dtype,
            device=str(device) if device is not None else "cpu",
            init_weights=False,
            default_prepend_bos=tokenizer_adds_bos(tokenizer),
        )
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelLoadError(f"invalid model config {cfg_dict.get('model_name')!r}: {exc!r}") from exc
    model = HookedTransformer(cfg, move_to_device=True)
    attach_tokenizer(model, tokenizer)
    allocate_fast_layout(model)
    tied = bool(cfg_dict.get("tie_word_embeddings"))
    params = dict(model.named_parameters())
    names = list(read_index(weights)[0]) if isinstance(weights, Path) else list(weights)
    missing = sorted(set(params) - set(names) - ({"unembed.W_U"} if tied else set()))
    unexpected = sorted(set(names) - set(params))
    if missing or unexpected:
        raise ModelLoadError(
            f"converted weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    wanted = {n: params[n] for n in names if not (tied and n == "unembed.W_U")}
    with torch.no_grad():
        if isinstance(weights, Path):
            digest = hashlib.sha256() if weights_sha256 is not None else None
            read_into(weights, wanted, digest)
            if digest is not None and digest.hexdigest() != weights_sha256:
                raise ChecksumMismatchError(
                    f"{weights} has sha256 {digest.hexdigest()}, expected {weights_sha256}"
                )
        else:
            for name, param in wanted.items():
                param.copy_(weights[name])
    if tied:
        # Tied in the original model: share the embedding (saves d_vocab * d_model floats).
        model.unembed.W_U = torch.nn.Parameter(model.embed.W_E.T)
    model.eval()
    return model


__all__ = ["build_hooked"]
