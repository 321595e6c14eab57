"""Weight layout: store parameters the way TransformerLens' forward reads them.

TransformerLens 3.x rearranges several weights on each forward: ``GatedMLP`` and
``Unembed`` call ``W.T.contiguous()`` and attention reshapes ``W_Q/W_K/W_V/W_O`` into
``F.linear`` layout, each a full copy of the matrix. Storing each parameter as the matching
permutation of a contiguous tensor turns those copies into free views.
"""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

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


def storage_permutation(name: str, gated_mlp: bool) -> tuple[int, ...] | None:
    """The permutation under which parameter ``name`` is stored contiguously, or ``None``.

    The cache writes these parameters in that order, so that loading is a plain read into
    the parameter's memory (see :mod:`selfie_tl.models.safetensors_io`).

    Example:
        >>> storage_permutation("blocks.3.attn.W_O", gated_mlp=True), storage_permutation("embed.W_E", True)
        ((2, 0, 1), None)
    """
    if name == "unembed.W_U":
        return (1, 0)
    parts = name.split(".")
    if len(parts) != 4 or parts[0] != "blocks":
        return None
    if parts[2] == "mlp" and not gated_mlp:
        return None  # the plain MLP uses addmm on W directly
    return _ACCESS_PERMUTATIONS.get(f"{parts[2]}.{parts[3]}")


def _store_as_permuted(module: torch.nn.Module, name: str, perm: tuple[int, ...], keep_values: bool) -> None:
    param = module._parameters.get(name)
    if not isinstance(param, torch.nn.Parameter) or param.ndim != len(perm):
        return
    if param.permute(perm).is_contiguous():
        return
    inverse = tuple(perm.index(i) for i in range(len(perm)))
    if keep_values:
        data = param.detach().permute(perm).contiguous()
    else:  # values are about to be overwritten: allocate, do not copy
        data = torch.empty(param.permute(perm).shape, dtype=param.dtype, device=param.device)
    module._parameters[name] = torch.nn.Parameter(data.permute(inverse), requires_grad=param.requires_grad)


def _relayout(model: HookedTransformer, keep_values: bool) -> HookedTransformer:
    gated = model.cfg.gated_mlp
    for block in model.blocks:
        for key, perm in _ACCESS_PERMUTATIONS.items():
            owner, name = key.split(".")
            if owner == "mlp" and not gated:
                continue  # the plain MLP uses addmm on W directly
            module = getattr(block, owner, None)
            if module is not None:
                _store_as_permuted(module, name, perm, keep_values)
    _store_as_permuted(model.unembed, "W_U", (1, 0), keep_values)
    return model


def optimize_layout(model: HookedTransformer) -> HookedTransformer:
    """Store weights so that TransformerLens' forward stops copying them on every call.

    For a small model decoding on CPU the per-call copies cost more than the arithmetic
    (the unembedding alone is a 113 MB copy per step for SmolLM2). Values are
    bit-identical; only strides change, so hooks, caching, gradients and ``state_dict``
    behave as before.

    :func:`~selfie_tl.models.load_model` applies it; call it yourself on models built
    otherwise.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = optimize_layout(tiny_model("llama"))
        >>> model.blocks[0].mlp.W_in.T.is_contiguous(), model.unembed.W_U.T.is_contiguous()
        (True, True)
    """
    return _relayout(model, keep_values=True)


def allocate_fast_layout(model: HookedTransformer) -> HookedTransformer:
    """Give an *uninitialised* model the layout of :func:`optimize_layout` without copying.

    Use only before every parameter is overwritten (loading a state dict): the new
    parameters hold whatever memory they were allocated with.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> allocate_fast_layout(tiny_model("llama")).blocks[0].attn.W_O.permute(2, 0, 1).is_contiguous()
        True
    """
    return _relayout(model, keep_values=False)


__all__ = ["allocate_fast_layout", "optimize_layout", "storage_permutation"]
