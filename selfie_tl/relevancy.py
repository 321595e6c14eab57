"""Relevancy: how much each generated token depends on the injected embedding.

SelfIE's relevancy score for a generated token ``t`` is
``|p(t | embedding injected) - p(t | placeholders left as they are)|``. A token with high
relevancy came from the embedding; one with low relevancy would have been written anyway,
driven by the interpretation prompt alone.

``p(t | injected)`` is recorded during generation, so the score costs one extra
teacher-forced forward pass per batch (the uninjected baseline over prompt + generated
tokens), with the unembedding applied only at the positions that predict generated tokens.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.generation import final_logits, residual_stream


@torch.no_grad()
def baseline_probs(
    model: HookedTransformer,
    prompt_ids: Int[Tensor, "batch pos"],
    generated: Int[Tensor, "batch steps"],
) -> Float[Tensor, "batch steps"]:
    """Probability of each generated token with nothing injected (teacher forcing).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> p = baseline_probs(model, model.to_tokens("ab"), torch.tensor([[99, 100]]))
        >>> tuple(p.shape)
        (1, 2)
    """
    device = model.cfg.device
    prompt_ids, generated = prompt_ids.to(device), generated.to(device)
    steps = generated.shape[1]
    # The last generated token predicts nothing we score, so it need not be fed.
    seq = torch.cat([prompt_ids, generated[:, :-1]], dim=1)
    resid = residual_stream(model, seq)
    logits = final_logits(model, resid[:, -steps:]).float()
    return logits.log_softmax(-1).gather(-1, generated[..., None]).squeeze(-1).exp()


def relevancy_scores(
    injected_probs: Float[Tensor, "batch steps"], baseline: Float[Tensor, "batch steps"]
) -> Float[Tensor, "batch steps"]:
    """``|p_injected - p_baseline|`` per generated token (values in [0, 1]).

    Example:
        >>> import torch
        >>> relevancy_scores(torch.tensor([[0.9, 0.5]]), torch.tensor([[0.1, 0.5]]))
        tensor([[0.8000, 0.0000]])
    """
    return (injected_probs - baseline).abs()
