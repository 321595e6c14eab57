"""The logit lens: read a residual vector through the model's own unembedding.

One home for it: :func:`logit_lens_logits` applies the final norm, the unembedding and the
output soft-cap exactly as ``HookedTransformer.forward`` does (via
:func:`selfie_tl.generation.final_logits`), so at the last layer it reproduces the model's
next-token prediction; :func:`logit_lens_topk` and :func:`logit_lens` read the top tokens.
Evaluation, interop and reports all call these.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.generation import final_logits
from selfie_tl.hooks import check_vectors, serialized
from selfie_tl.validation import as_bool, as_int, check_model


@serialized
@torch.no_grad()
def logit_lens_logits(
    model: HookedTransformer, vectors: Float[Tensor, "n d_model"], *, apply_ln: bool = True
) -> Float[Tensor, "n d_vocab"]:
    """Logits of ``unembed(ln_final(v))`` (with the model's logit soft-cap) per vector.

    Args:
        model: the model.
        vectors: ``[n, d_model]`` residual vectors (or one ``[d_model]`` vector).
        apply_ln: apply the final norm first (the standard logit lens). It normalises each
            vector on its own, as ``ActivationCache.apply_ln_to_stack`` does.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> logit_lens_logits(tiny_model(), torch.randn(2, 64)).shape
        torch.Size([2, 259])
    """
    vectors = check_vectors(check_model(model), vectors)
    return final_logits(model, vectors[:, None, :], apply_ln=as_bool(apply_ln, "apply_ln"))[:, 0]


def _check_top_k(model: HookedTransformer, top_k: int) -> int:
    return as_int(top_k, "top_k", 1, check_model(model).cfg.d_vocab_out)


def logit_lens_topk(
    model: HookedTransformer, vectors: Float[Tensor, "n d_model"], k: int = 20, *, apply_ln: bool = True
) -> Int[Tensor, "n k"]:
    """Ids of the ``k`` most likely tokens of the logit lens, per vector, most likely first.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> logit_lens_topk(tiny_model(), torch.randn(2, 64), k=3).shape
        torch.Size([2, 3])
    """
    k = _check_top_k(model, k)
    return logit_lens_logits(model, vectors, apply_ln=apply_ln).topk(k, dim=-1).indices


def logit_lens(
    model: HookedTransformer, vectors: Float[Tensor, "n d_model"], top_k: int = 5, *, apply_ln: bool = True
) -> list[list[tuple[str, float]]]:
    """Top tokens of the logit lens with their probabilities, for each vector.

    For the last layer (``n_layers``: output of the last block) this is the model's own
    next-token distribution; for earlier layers it is the usual logit-lens reading.

    Returns:
        For each vector, ``top_k`` ``(token, probability)`` pairs, most likely first.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> out = logit_lens(tiny_model(), torch.randn(2, 64), top_k=3)
        >>> len(out), len(out[0])
        (2, 3)
    """
    top_k = _check_top_k(model, top_k)
    probs = logit_lens_logits(model, vectors, apply_ln=apply_ln).float().softmax(-1)
    values, indices = probs.topk(top_k, dim=-1)
    tok = model.tokenizer
    return [
        [(tok.decode([int(i)]), float(p)) for i, p in zip(idx, val, strict=True)]
        for idx, val in zip(indices.tolist(), values.tolist(), strict=True)
    ]


__all__ = ["logit_lens", "logit_lens_logits", "logit_lens_topk"]
