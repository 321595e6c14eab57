"""The unembedding in column blocks, on the CPU.

On the CPU build of torch (MKL ``sgemm``), the product ``[rows, d_model] x [d_model, d_vocab]``
with a vocabulary of tens of thousands of columns runs well below the speed the same product
reaches in blocks of about a thousand columns. Measured on 2 cores for SmolLM2's 49,152 x 576
unembedding, medians of 15 calls on SmolLM2's own weights:

======  =========  ===================
rows    one call   blocks of 1,024
======  =========  ===================
8       16.2 ms    12.5 ms
32      24.9 ms    19.8 ms
128     61.3 ms    52.5 ms
512     234.5 ms   205.3 ms
======  =========  ===================

Each logit is the same dot product over ``d_model`` either way, and the blocks call the same
operation (``F.linear`` with the bias slice) on rows of the same weight, so the logits are
bit-identical (``tests/fast/test_unembed.py`` checks ``torch.equal`` against
``model.unembed``). The blocks run only where that was measured and nothing could notice:
on the CPU, without autograd, and while no hook is attached to ``model.unembed`` or its
hook points. Set :data:`CHUNK_COLUMNS` to ``None`` to turn them off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.fast.row_compaction import any_hook_attached

CHUNK_COLUMNS: int | None = 1024
"""Columns of the unembedding per block on the CPU (``None``: one product, as stock).
1,024 was the fastest of 512-4,096 at 8-512 rows on 2 cores (see the module docstring)."""


def unembed_watched(model: HookedTransformer) -> bool:
    """Whether a hook is attached to ``model.unembed`` or its hook points (then the stock
    product must run, as the hooks expect to see it).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> unembed_watched(model)
        False
        >>> with model.hooks(fwd_hooks=[("unembed.hook_in", lambda t, hook: t)]):
        ...     unembed_watched(model)
        True
    """
    u = model.unembed
    return any_hook_attached(model, [u, u.hook_in, u.hook_out])


def uses_blocks(model: HookedTransformer, resid: Tensor) -> bool:
    """Whether :func:`unembed` takes the blocked path for ``resid`` on ``model``.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()  # 259 columns: one block would be the whole product
        >>> uses_blocks(model, torch.zeros(1, 64))
        False
    """
    u = model.unembed
    return (
        CHUNK_COLUMNS is not None
        and resid.device.type == "cpu"
        and u.W_U.shape[-1] > CHUNK_COLUMNS
        # Backward through blocks would sum the input gradient in another order; training
        # (the adapter, control edits) keeps the stock product.
        and not (torch.is_grad_enabled() and resid.requires_grad)
        and not unembed_watched(model)
    )


def unembed(model: HookedTransformer, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """``model.unembed(resid)``, in column blocks where that is faster (see :func:`uses_blocks`).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> x = torch.randn(2, 3, 64)
        >>> torch.equal(unembed(model, x), model.unembed(x))
        True
    """
    if not uses_blocks(model, resid):
        return model.unembed(resid)
    u = model.unembed
    # The stock forward is F.linear(resid, W_U.T.contiguous(), b_U); under optimize_layout
    # W_U.T is already contiguous, so this takes no copy.
    weight, bias = u.W_U.T.contiguous(), u.b_U
    step = int(CHUNK_COLUMNS)
    return torch.cat(
        [F.linear(resid, weight[i : i + step], bias[i : i + step]) for i in range(0, weight.shape[0], step)], dim=-1
    )


__all__ = ["CHUNK_COLUMNS", "unembed", "unembed_watched", "uses_blocks"]
