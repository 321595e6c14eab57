"""Relevancy: how much each generated token depends on the injected embedding.

SelfIE's relevancy score for a generated token ``t`` is
``|p(t | embedding injected) - p(t | placeholders left as they are)|``. A token with high
relevancy came from the embedding; one with low relevancy would have been written anyway,
driven by the interpretation prompt alone.

``p(t | injected)`` is recorded during generation. The baseline needs one teacher-forced
pass over the generated tokens; because nothing is injected, the interpretation prompt is
the same for every row, so its keys and values are computed once per call
(:class:`PromptBaseline`) and shared by every batch. Each batch then only feeds its
generated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from selfie_tl.generation import final_logits, residual_stream


@dataclass
class PromptBaseline:
    """The uninjected interpretation prompt, run once: its KV cache and next-token log-probs.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> base = PromptBaseline.build(model, model.to_tokens("ab")[0])
        >>> tuple(base.first_logprobs.shape)
        (259,)
    """

    cache: TransformerLensKeyValueCache
    first_logprobs: Float[Tensor, " vocab"]

    @classmethod
    @torch.no_grad()
    def build(cls, model: HookedTransformer, prompt_ids: Int[Tensor, " pos"]) -> PromptBaseline:
        ids = prompt_ids.to(model.cfg.device)[None]
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)
        resid = residual_stream(model, ids, cache)
        logprobs = final_logits(model, resid[:, -1]).float().log_softmax(-1)[0]
        return cls(cache=cache, first_logprobs=logprobs)

    def expanded(self, batch: int) -> TransformerLensKeyValueCache:
        """A frozen view of the cache for ``batch`` rows (no copy; never mutated)."""
        entries = [
            TransformerLensKeyValueCacheEntry(
                past_keys=e.past_keys.expand(batch, -1, -1, -1),
                past_values=e.past_values.expand(batch, -1, -1, -1),
                frozen=True,
            )
            for e in self.cache.entries
        ]
        mask = self.cache.previous_attention_mask.expand(batch, -1)
        return TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask, frozen=True)


@torch.no_grad()
def baseline_probs(
    model: HookedTransformer,
    prompt_ids: Int[Tensor, " pos"] | Int[Tensor, "batch pos"],
    generated: Int[Tensor, "batch steps"],
    prompt_baseline: PromptBaseline | None = None,
) -> Float[Tensor, "batch steps"]:
    """Probability of each generated token with nothing injected (teacher forcing).

    Args:
        model: the model.
        prompt_ids: the interpretation prompt (1-D, or ``[batch, pos]`` of identical rows).
        generated: ``[batch, steps]`` tokens generated with the embedding injected.
        prompt_baseline: the prompt's shared cache from :meth:`PromptBaseline.build`
            (built here when not given; pass it to reuse it across batches).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> p = baseline_probs(model, model.to_tokens("ab")[0], torch.tensor([[99, 100]]))
        >>> tuple(p.shape)
        (1, 2)
    """
    device = model.cfg.device
    generated = generated.to(device)
    if prompt_baseline is None:
        ids = prompt_ids if prompt_ids.ndim == 1 else prompt_ids[0]
        prompt_baseline = PromptBaseline.build(model, ids)
    batch, steps = generated.shape
    first = prompt_baseline.first_logprobs[generated[:, 0]]
    if steps == 1:
        return first.exp()[:, None]
    # The last generated token predicts nothing we score, so it is not fed.
    resid = residual_stream(model, generated[:, :-1], prompt_baseline.expanded(batch))
    rest = final_logits(model, resid).float().log_softmax(-1).gather(-1, generated[:, 1:, None]).squeeze(-1)
    return torch.cat([first[:, None], rest], dim=1).exp()


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
