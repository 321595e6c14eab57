"""The SelfIE algorithm in plain Hugging Face ``transformers``, as an independent reference.

This mirrors the published implementation's mechanism: a forward pre-hook on decoder layer
``k`` overwrites the hidden states at the placeholder positions whenever the layer sees more
than one position (the prefill), then ``generate`` decodes greedily with its KV cache.
selfie_tl's tests and benchmarks compare :func:`selfie_tl.interpret_vectors` against it
token for token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor


@torch.no_grad()
def hf_interpret_ids(
    hf_model: Any,
    input_ids: Int[Tensor, " pos"],
    placeholder_positions: Sequence[int],
    vectors: Float[Tensor, "n d_model"],
    k: int,
    max_new_tokens: int,
    batch_size: int = 8,
    **generate_kwargs: Any,
) -> list[list[int]]:
    """Greedy SelfIE generation with a ``transformers`` causal LM.

    Args:
        hf_model: a ``transformers`` decoder-only model with ``model.layers``.
        input_ids: 1-D interpretation prompt ids.
        placeholder_positions: positions to overwrite.
        vectors: one vector per interpretation.
        k: decoder layer whose input is overwritten.
        max_new_tokens: tokens to generate.
        batch_size: rows per ``generate`` call.
        **generate_kwargs: more ``generate`` settings (``repetition_penalty``,
            ``no_repeat_ngram_size``, ...), to compare decoding controls.

    Returns:
        Generated ids per vector, cut before the first end-of-sequence token.
    """
    eos = hf_model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    positions = torch.as_tensor(list(placeholder_positions))
    layer = hf_model.model.layers[k]
    results: list[list[int]] = []
    for start in range(0, len(vectors), batch_size):
        chunk = vectors[start : start + batch_size]

        def pre_hook(module, args, kwargs, chunk=chunk):
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            if hidden.shape[1] == 1:
                return None
            hidden = hidden.clone()
            hidden[:, positions] = chunk[:, None, :].to(hidden.dtype)
            if "hidden_states" in kwargs:
                kwargs["hidden_states"] = hidden
                return args, kwargs
            return (hidden, *args[1:]), kwargs

        handle = layer.register_forward_pre_hook(pre_hook, with_kwargs=True)
        try:
            ids = input_ids[None].expand(len(chunk), -1)
            out = hf_model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                do_sample=False, pad_token_id=next(iter(eos_ids), 0), **generate_kwargs,
            )  # fmt: skip
        finally:
            handle.remove()
        for row in out[:, ids.shape[1] :].tolist():
            cut = next((i for i, t in enumerate(row) if t in eos_ids), len(row))
            results.append(row[:cut])
    return results
