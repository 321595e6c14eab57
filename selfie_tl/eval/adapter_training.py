"""Train a self-interpretation adapter on the known facts' *training* split.

The objective never mentions attributes: the interpretation of a subject's last-token state
should start by naming the subject (``" Vinson Massif"``). States are read at several
layers so that one adapter serves the whole layer range. Only ``split="train"`` facts are
used by default; validation and test facts stay unseen.

Example:
    >>> from selfie_tl.testing import tiny_model
    >>> import pandas as pd
    >>> facts = pd.DataFrame({"subject": ["ab", "cd"], "prompt": ["ab is", "cd is"]})
    >>> adapter = train_entity_adapter(tiny_model(), facts, layers=[1], k=1, steps=1, verbose=False)
    >>> adapter.info["n_train"]
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from selfie_tl.adapter import SelfInterpretationAdapter, train_adapter
from selfie_tl.eval.attributes import subject_vectors
from selfie_tl.scaling import placeholder_norm


def train_entity_adapter(
    model: HookedTransformer,
    facts: pd.DataFrame,
    layers: Sequence[int],
    interpretation_prompt: Any = None,
    *,
    max_vectors: int | None = None,
    norm_match: bool = False,
    seed: int = 0,
    **options: Any,
) -> SelfInterpretationAdapter:
    """Fit an adapter so SelfIE of each subject state names the subject.

    Args:
        model: the model.
        facts: rows with ``subject`` and ``prompt`` (the training split).
        layers: residual layers whose states are used (one training pair per fact and layer).
        interpretation_prompt: the prompt the adapter will be used with.
        max_vectors: keep a random subset of this many pairs (CPU budgets).
        norm_match: train on norm-matched states (use the same setting at inference).
        seed: subset and initialisation seed.
        **options: :class:`~selfie_tl.adapter.AdapterConfig` fields (``k``, ``steps``, ``lr``, ...).
    """
    from selfie_tl.prompts import as_prompt

    prompt = as_prompt(model.tokenizer, interpretation_prompt)
    vecs, _, _ = subject_vectors(model, facts, list(layers))
    vectors = vecs.reshape(-1, vecs.shape[-1])
    targets = [" " + s for s in facts["subject"] for _ in layers]
    if max_vectors is not None and max_vectors < len(targets):
        keep = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))[:max_vectors].tolist()
        vectors, targets = vectors[keep], [targets[i] for i in keep]
    if norm_match:
        norm = placeholder_norm(model, prompt, options.get("k", 2))
        vectors = vectors * (norm / vectors.norm(dim=-1, keepdim=True))
    adapter = train_adapter(model, vectors, targets, prompt, seed=seed, **options)
    adapter.info.update({"objective": "name the subject", "layers": list(layers), "norm_match": norm_match})
    return adapter


__all__ = ["train_entity_adapter"]
