"""Ablating SAE features: in vectors, as a hook during a forward pass, and the whole flow.

Ablation keeps the SAE's reconstruction error, so only the chosen features move::

    x' = x - decode(acts) + decode(acts with the chosen features set to 0)

For an SAE whose decoder is linear this is ``x - sum_f acts_f * W_dec[f]``: with no chosen
feature active, ``x' == x`` exactly. :func:`ablation_flow` interprets a residual state
before and after, and shows the model's answer with and without the ablation hook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.hooks import HookFn
from selfie_tl.sae._compat import check_features, check_sae, sae_info


@torch.no_grad()
def ablate_features(
    vectors: Float[Tensor, "... d"], sae: Any, features: int | Sequence[int]
) -> Float[Tensor, "... d"]:
    """``vectors`` with the chosen features zeroed in the SAE reconstruction, error kept.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> sae = tiny_sae(tiny_model())
        >>> x = 3 * sae.W_dec[5].detach()[None]           # only feature 5 fires
        >>> bool(ablate_features(x, sae, [5]).norm() < 1e-4 * x.norm())
        True
        >>> bool(torch.allclose(ablate_features(x, sae, [6]), x))
        True
    """
    info = sae_info(sae)
    feats = torch.as_tensor(check_features(features, info.d_sae), device=sae.W_dec.device)
    w = sae.W_dec
    x = vectors.to(w.device, w.dtype)
    acts = sae.encode(x)
    kept = acts.clone()
    kept[..., feats] = 0
    removed = sae.decode(acts) - sae.decode(kept)
    return (x - removed).to(vectors.device, vectors.dtype)


def ablation_hooks(
    model: HookedTransformer,
    sae: Any,
    features: int | Sequence[int],
    *,
    positions: Sequence[int] | None = None,
    allow_other_model: bool = False,
) -> list[tuple[str, HookFn]]:
    """``fwd_hooks`` that ablate ``features`` at the SAE's hook during any forward pass.

    On a ``HookedSAETransformer`` with this SAE spliced in, the features are zeroed at
    ``<hook>.hook_sae_acts_post`` instead (with ``use_error_term=True`` that is the same
    edit). ``positions``: only those token positions (default: all).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> model = tiny_model(); sae = tiny_sae(model)
        >>> with model.hooks(fwd_hooks=ablation_hooks(model, sae, [1, 2])):
        ...     _ = model("hello")
        >>> ablation_hooks(model, sae, [1])[0][0]
        'blocks.1.hook_resid_pre'
    """
    info = check_sae(model, sae, allow_other_model=allow_other_model)
    feats = check_features(features, info.d_sae)
    pos = None if positions is None else list(positions)
    spliced = f"{info.hook_name}.hook_sae_acts_post"
    if info.hook_name not in model.hook_dict and spliced in model.hook_dict:

        def zero(acts: Tensor, hook: Any) -> Tensor:
            out = acts.clone()
            if pos is None:
                out[..., feats] = 0
            elif acts.shape[1] > max(pos):
                sub = out[:, pos]
                sub[..., feats] = 0
                out[:, pos] = sub
            return out

        return [(spliced, zero)]

    def hook(resid: Tensor, hook: Any) -> Tensor:
        if pos is None:
            return ablate_features(resid, sae, feats)
        if resid.shape[1] <= max(pos):
            return resid
        out = resid.clone()
        out[:, pos] = ablate_features(resid[:, pos], sae, feats)
        return out

    return [(info.hook_name, hook)]


@contextlib.contextmanager
def ablated(model: HookedTransformer, sae: Any, features: int | Sequence[int], **kwargs: Any) -> Iterator[HookedTransformer]:
    """Context manager: the model with ``features`` ablated; its hooks are restored after."""
    with model.hooks(fwd_hooks=ablation_hooks(model, sae, features, **kwargs)):
        yield model


def ablation_flow(
    model: HookedTransformer,
    sae: Any,
    features: int | Sequence[int],
    prompt: str,
    *,
    position: int = -1,
    max_new_tokens: int = 20,
    interpretation_prompt: Any = None,
    answer_tokens: int = 24,
    allow_other_model: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Ablate features and look twice: what SelfIE reads in the residual, and what the model says.

    1. capture the residual at the SAE's hook, ``prompt`` token ``position``, and its
       feature activations;
    2. interpret it before and after :func:`ablate_features` (same settings, same prompt);
    3. complete ``prompt`` greedily without and with :func:`ablation_hooks` (all positions).

    Returns:
        ``{"interpretations": DataFrame(state, interpretation, ...), "answers":
        DataFrame(state, answer), "activations": {feature: activation}, "top_features":
        [(feature, activation), ...] at that position, "delta_norm": ||x - x'||}``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> model = tiny_model(); sae = tiny_sae(model)
        >>> out = ablation_flow(model, sae, [0], "The cat", max_new_tokens=3, answer_tokens=3, k=1)
        >>> out["interpretations"].state.tolist(), out["answers"].state.tolist()
        (['before', 'after'], ['before', 'after'])
    """
    from selfie_tl.generation import complete
    from selfie_tl.interpret import generate_interpretations
    from selfie_tl.sae.activations import capture_features

    info = check_sae(model, sae, allow_other_model=allow_other_model)
    feats = check_features(features, info.d_sae)
    resid, acts = capture_features(model, prompt, sae, [position])
    after = ablate_features(resid, sae, feats)
    options.setdefault("relevancy", True)
    batch = generate_interpretations(
        model, torch.cat([resid, after]).to(model.cfg.dtype), interpretation_prompt,
        max_new_tokens=max_new_tokens, token_probs=False, **options,
    )  # fmt: skip
    interp = pd.DataFrame(
        {
            "state": ["before", "after"],
            "interpretation": [t.strip() for t in batch.texts],
            "mean_relevancy": [sum(r) / len(r) if r else float("nan") for r in (batch.relevancy or [[], []])],
            "generated_tokens": batch.tokens,
            "relevancy": batch.relevancy if batch.relevancy is not None else [None, None],
        }
    )
    answer_before = complete(model, [prompt], max_new_tokens=answer_tokens)[0]
    with ablated(model, sae, feats, allow_other_model=allow_other_model):
        answer_after = complete(model, [prompt], max_new_tokens=answer_tokens)[0]
    top = acts[0].topk(min(8, acts.shape[-1]))
    return {
        "interpretations": interp,
        "answers": pd.DataFrame({"state": ["before", "after"], "answer": [answer_before, answer_after]}),
        "activations": {f: float(acts[0, f]) for f in feats},
        "top_features": [(int(i), float(v)) for v, i in zip(top.values, top.indices, strict=True) if v > 0],
        "delta_norm": float((resid - after).norm()),
    }


__all__ = ["ablate_features", "ablated", "ablation_flow", "ablation_hooks"]
