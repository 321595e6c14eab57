"""How strongly to inject: scale multipliers, norm matching and the automatic scale choice.

A residual state read at a late layer can be ten times the norm of what the interpretation
prompt carries at layer ``k``; a component write or an SAE direction can be a hundred times
smaller. The injected vector is ``scale * v`` (after optional norm matching), and
``scale="auto"`` picks a scale per vector from a small grid.

The automatic choice follows "Self-explaining SAE features" (Kharlapenko et al., 2024),
which measured two signals per candidate scale, both from one uninjected-length prefill:

* **self-similarity**: cosine between the injected vector and the last layer's residual
  at the placeholder positions (averaged over them): does the model still carry the
  injected direction to its output, or has it washed it out (too weak) or broken the
  forward pass (too strong)?
* **entropy** of the next-token distribution at the prompt's last position: how committed
  the model is to a continuation.

Rule used here (:func:`choose_scales`): among the candidates whose self-similarity reaches
``threshold``, take the one with the lowest entropy; if none reaches it, take the most
self-similar candidate and flag the row (``auto_scale_ok = False``), since such
interpretations are often unfaithful. The rule and its threshold were chosen on the
validation split of the known facts (``selfie-tl eval``); see the README.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.generation import final_logits, residual_stream
from selfie_tl.hooks import HookFn, check_layer, injection_hooks, serialized
from selfie_tl.prompts import InterpretationPrompt

DEFAULT_AUTO_SCALES = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Candidate multipliers for ``scale="auto"``."""


@serialized
@torch.no_grad()
def placeholder_norm(model: HookedTransformer, prompt: InterpretationPrompt, k: int) -> float:
    """Mean L2 norm of the interpretation prompt's own residual at its placeholders, layer ``k``.

    What ``norm_match=True`` rescales every vector to: the norm the model expects there.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.prompts import default_interpretation_prompt
        >>> model = tiny_model()
        >>> placeholder_norm(model, default_interpretation_prompt(model.tokenizer), 1) > 0
        True
    """
    k = check_layer(model, k, "injection")
    name = f"blocks.{k}.hook_resid_pre"
    ids = prompt.input_ids[None].to(model.cfg.device)
    _, cache = model.run_with_cache(ids, names_filter=lambda n: n == name, stop_at_layer=k + 1)
    states = cache[name][0, prompt.placeholder_positions]
    return float(states.norm(dim=-1).mean())


@serialized
@torch.no_grad()
def scale_criteria(
    model: HookedTransformer,
    vectors: Float[Tensor, "n d_model"],
    prompt: InterpretationPrompt,
    k: int,
    scales: Sequence[float],
    *,
    inject_layers: int = 1,
) -> tuple[Float[Tensor, "n n_scales"], Float[Tensor, "n n_scales"]]:
    """Self-similarity and next-token entropy of each vector at each candidate scale.

    One prefill of ``len(vectors) * len(scales)`` rows with ``scale * v`` injected (replace
    mode) at the placeholders; hooks already on the model stay active.

    Returns:
        ``(self_similarity, entropy)``, each ``[n, len(scales)]``.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.prompts import default_interpretation_prompt
        >>> model = tiny_model()
        >>> sim, ent = scale_criteria(model, torch.randn(2, 64), default_interpretation_prompt(model.tokenizer), 1, [1, 4])
        >>> tuple(sim.shape), tuple(ent.shape)
        ((2, 2), (2, 2))
    """
    n, n_scales = vectors.shape[0], len(scales)
    factors = torch.as_tensor(list(scales), dtype=vectors.dtype, device=vectors.device)
    scaled = (vectors[:, None, :] * factors[None, :, None]).reshape(n * n_scales, -1)
    ids = prompt.input_ids[None].expand(n * n_scales, -1).to(model.cfg.device)
    hooks: list[tuple[str, HookFn]] = injection_hooks(
        model, scaled, prompt.placeholder_positions, k, n_layers=inject_layers
    )
    with model.hooks(fwd_hooks=hooks):
        resid = residual_stream(model, ids)
    final = resid[:, prompt.placeholder_positions].mean(dim=1)
    sim = torch.nn.functional.cosine_similarity(final.float(), scaled.float(), dim=-1)
    logprobs = final_logits(model, resid[:, -1]).float().log_softmax(-1)
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    return sim.reshape(n, n_scales), entropy.reshape(n, n_scales)


def choose_scales(
    self_similarity: Float[Tensor, "n n_scales"],
    entropy: Float[Tensor, "n n_scales"],
    threshold: float,
) -> tuple[Int[Tensor, " n"], Bool[Tensor, " n"]]:
    """Index of the chosen scale per row, and whether the row passed the threshold.

    Lowest entropy among the candidates with ``self_similarity >= threshold``; where none
    passes, the most self-similar candidate (flagged ``False``).

    Example:
        >>> import torch
        >>> sim = torch.tensor([[0.9, 0.5, 0.1], [0.1, 0.2, 0.1]])
        >>> ent = torch.tensor([[3.0, 1.0, 0.5], [1.0, 1.0, 1.0]])
        >>> idx, ok = choose_scales(sim, ent, threshold=0.4)
        >>> idx.tolist(), ok.tolist()
        ([1, 1], [True, False])
    """
    passing = self_similarity >= threshold
    masked = entropy.masked_fill(~passing, float("inf"))
    best_passing = masked.argmin(dim=-1)
    fallback = self_similarity.argmax(dim=-1)
    ok = passing.any(dim=-1)
    return torch.where(ok, best_passing, fallback), ok


__all__ = ["DEFAULT_AUTO_SCALES", "choose_scales", "placeholder_norm", "scale_criteria"]
