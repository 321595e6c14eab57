"""Greedy decoding's choice from a bfloat16 screen of the vocabulary, then exact logits.

A greedy step needs only the argmax of the float32 logits, and the full unembedding
(``[rows, d_model] x [d_model, d_vocab]``) is a fifth of a decode step's arithmetic on
SmolLM2-135M. On CPUs with bfloat16 dot-product instructions (``avx512_bf16``, AMX) the same
product in bfloat16 runs about three times faster (2 cores, 49,152 x 576: 128 rows 52 -> 21
ms, 32 rows 20 -> 9 ms). This module computes that cheap product, bounds how far each
approximate logit can be from the float32 one, and keeps only the tokens that could still
be the argmax; their float32 logits are then computed by the same product the full
unembedding uses, and the argmax is taken among them.

Why the choice is the stock choice. Write ``h`` for a row's final-norm output, ``W_j`` for
column ``j`` of ``W_U``, ``h'`` and ``W'_j`` for their bfloat16 roundings. Then
``h.W_j - h'.W'_j = h.(W_j - W'_j) + (h - h').W'_j``, so by Cauchy-Schwarz the exact values
differ by at most ``|h| max_j|W_j - W'_j| + |h - h'| max_j|W'_j|`` (the rounding errors are
measured, not assumed). Float32 accumulation adds at most ``gamma_d |h'| max_j|W'_j|``
(and the float32 reference as much with ``h`` and ``W``); call the sum, with a 1% margin,
``eps``. The product's bfloat16 output ``a_j`` is within ``c |a_j|`` of its float32
accumulation (``c = 2**-7 / (1 - 2**-7)``, truncation's bound; round-to-nearest halves
it). So the row's top token has a float32 logit of at least ``floor = a_top - c|a_top| -
eps``, and token ``j`` at most ``a_j + c|a_j| + eps``, which is increasing in ``a_j``: every
token with ``a_j`` below the ``T`` where it equals ``floor`` has a float32 logit strictly
below the maximum, so it is neither the argmax nor tied with it. The kept tokens (``a_j >=
T``, with ``T`` rounded down; on 60 of SmolLM2's 128-row decode steps a median of 5 per
row, a mean of 9, about 350 columns per step after padding) get their float32 logits from
``F.linear`` over their rows of ``W_U``, the operation and operand layout of the full
product; on MKL's ``sgemm`` a column comes out with the same bits whatever other columns
are in the call once their count is a multiple of 64 (``tests/fast/test_screened_argmax.py`` checks ``torch.equal`` at 1-130 rows
on SmolLM2's shape), so the argmax among them, lowest id first on ties, is
``logits.argmax(-1)``'s.

It applies only where nothing else reads the logits: greedy decoding without logit
processors or a soft cap, no probabilities recorded, float32 weights on the CPU with fast
bfloat16 products, no bias on the unembedding, and no hook on the unembedding (the final
norm runs as usual, so its hooks fire as they would). Anything else, a non-finite row, or
more kept columns than :data:`MAX_KEPT_FRACTION` of the vocabulary, takes the full
product. Switches: ``generate(screened_argmax=False)`` and :data:`ENABLED`.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.fast.unembed import unembed_watched

ENABLED = True
"""Set to ``False`` to always take the full float32 unembedding."""

MIN_VOCAB = 4096
"""Vocabularies smaller than this take the full product (the screen would not pay)."""

MAX_KEPT_FRACTION = 0.25
"""A step whose kept columns exceed this share of the vocabulary takes the full product."""

PAD_COLUMNS = 64
"""The exact product's column count is rounded up to a multiple of this (see the module
docstring: MKL's small-``N`` kernels round differently from the full product's)."""

SAFETY = 1.01
"""Factor on the error bound, for the float32 rounding of the norms that enter it."""


def has_bf16_instructions() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (``avx512_bf16`` or AMX),
    without which the bfloat16 product is emulated and the screen would not pay."""
    cpu = getattr(torch, "cpu", None)
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        probe = getattr(cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except (RuntimeError, TypeError, AttributeError):  # a private probe that changed: as absent
            pass
    return False


@functools.cache
def accumulates_in_float32() -> bool:
    """Whether torch's bfloat16 matrix product here sums in float32, which the error bound
    assumes: 1,024 ones must sum to 1,024 (bfloat16 accumulation stalls at 256)."""
    ones = torch.ones(8, 1024, dtype=torch.bfloat16)
    return bool((ones @ ones[:4].T == 1024).all())


@dataclass
class _Screen:
    """The bfloat16 copy of a model's unembedding and the norms of its rounding errors."""

    weight: Tensor  # [d_vocab, d_model] bfloat16
    version: tuple[int, int, int]  # what W_U was built from: id, storage, in-place version
    max_norm: float  # max_j |W_j| over the float32 and bfloat16 columns
    max_error_norm: float  # max_j |W_j - W'_j|


_SCREENS: weakref.WeakKeyDictionary[torch.nn.Module, _Screen] = weakref.WeakKeyDictionary()
"""Per unembedding module (the model holds nothing; an entry goes with its module)."""


def _screen_for(unembed: torch.nn.Module) -> _Screen:
    """The screen of ``unembed.W_U``, built once and rebuilt when the weight is replaced or
    changed in place."""
    w_u = unembed.W_U
    version = (id(w_u), w_u.data_ptr(), w_u._version)
    screen = _SCREENS.get(unembed)
    if screen is None or screen.version != version:
        weight = w_u.detach().T.contiguous()
        low = weight.to(torch.bfloat16)
        # Float32 norms: their own rounding (~d * 2**-24 relative) is inside SAFETY's margin.
        error = (weight - low.float()).norm(dim=-1).max().item()
        norm = max(weight.norm(dim=-1).max().item(), low.float().norm(dim=-1).max().item())
        screen = _Screen(weight=low, version=version, max_norm=norm, max_error_norm=error)
        _SCREENS[unembed] = screen
    return screen


def screen_applies(model: HookedTransformer) -> bool:
    """Whether :func:`screened_argmax` may replace ``final_logits(...).argmax(-1)`` on this
    model now (the per-call conditions - greedy, no processors, no probabilities - are the
    caller's). Everything but the hooks is fixed for a model and call; a caller asking on
    every step checks once and then only :func:`~selfie_tl.fast.unembed.unembed_watched`.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> screen_applies(tiny_model())  # 259 tokens: the full product is cheap
        False
    """
    u = model.unembed
    w_u = u.W_U
    return (
        ENABLED
        and w_u.device.type == "cpu"
        and w_u.dtype == torch.float32
        and w_u.shape[-1] >= MIN_VOCAB
        and model.cfg.output_logits_soft_cap <= 0.0
        and not torch.is_grad_enabled()
        and has_bf16_instructions()
        and accumulates_in_float32()
        and not bool(u.b_U.any())
        and not unembed_watched(model)
    )


def screened_argmax(
    model: HookedTransformer, resid: Float[Tensor, "batch d_model"], *, require_fast_cpu: bool = True
) -> Int[Tensor, " batch"] | None:
    """``final_logits(model, resid).argmax(-1)`` without the full float32 unembedding.

    Args:
        model: the model (see :func:`screen_applies`; the caller checks it).
        resid: ``[batch, d_model]`` residual before the final norm.
        require_fast_cpu: ``False`` runs the screen on CPUs without bfloat16 instructions
            too (torch emulates the product; same choices, no gain), as the tests do.

    Returns:
        The chosen ids, or ``None`` when the full product must be taken instead (a
        non-finite row, or too many tokens left after the screen).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.generation import final_logits
        >>> model = tiny_model()
        >>> resid = torch.randn(4, 64)
        >>> choice = screened_argmax(model, resid, require_fast_cpu=False)
        >>> torch.equal(choice, final_logits(model, resid).argmax(-1))
        True
    """
    if not accumulates_in_float32() or (require_fast_cpu and not has_bf16_instructions()):
        return None
    h = model.ln_final(resid) if model.cfg.normalization_type is not None else resid
    h = h.float()
    if not bool(torch.isfinite(h).all()):
        return None  # the full product raises the stock error
    screen = _screen_for(model.unembed)
    low_h = h.to(torch.bfloat16)
    approx = low_h @ screen.weight.T  # [batch, vocab] bfloat16 (float32 accumulation)
    norm_h = h.norm(dim=-1)
    error_h = (h - low_h.float()).norm(dim=-1)
    d = h.shape[-1]
    gamma = d * 2.0**-24 / (1 - d * 2.0**-24)
    top = approx.max(dim=-1).values.float()
    eps = (
        SAFETY
        * (
            norm_h * screen.max_error_norm
            + error_h * screen.max_norm
            + gamma * (2 * norm_h + error_h) * screen.max_norm
        )
        + 1e-30 * d
    )
    # The bfloat16 output is within c|approx| of its float32 accumulation, so the top
    # token's float32 logit is at least `floor`, and token j's at most f(approx_j) + eps
    # with f(x) = x + c|x|, increasing: j can reach `floor` only if approx_j >= T, f(T) =
    # floor - eps. T is then lowered by a bfloat16 ulp so that rounding cannot raise it.
    c = 2.0**-7 / (1 - 2.0**-7)
    floor = top - c * top.abs() - eps
    need = floor - eps
    threshold = torch.where(need >= 0, need / (1 + c), need / (1 - c))
    threshold = (threshold - threshold.abs() * 2.0**-7 - 1e-30).to(torch.bfloat16)
    kept = approx >= threshold[:, None]
    # amax over bytes: ~15x faster than any() over a bool matrix on the CPU
    columns = kept.view(torch.uint8).amax(dim=0).nonzero().flatten()
    vocab = approx.shape[-1]
    if not bool(torch.isfinite(threshold.float()).all()) or columns.numel() > MAX_KEPT_FRACTION * vocab:
        return None
    width = -(-columns.numel() // PAD_COLUMNS) * PAD_COLUMNS
    if width > columns.numel():  # pad with other columns, never kept (masked below)
        spare = torch.ones(vocab, dtype=torch.bool)
        spare[columns] = False
        columns = torch.cat([columns, spare.nonzero().flatten()[: width - columns.numel()]])
    u = model.unembed
    # Rows of W_U.T as a contiguous [n, d_model] block: the operand layout of the full product.
    exact = F.linear(h, u.W_U.T.index_select(0, columns), u.b_U.index_select(0, columns))
    exact = exact.masked_fill(~kept.index_select(1, columns), float("-inf"))
    # Kept columns come first in ascending id order, so the first maximum is the lowest id.
    return columns[exact.argmax(dim=-1)]


__all__ = [
    "ENABLED", "MAX_KEPT_FRACTION", "MIN_VOCAB", "accumulates_in_float32", "has_bf16_instructions", "screen_applies",
    "screened_argmax",
]  # fmt: skip
