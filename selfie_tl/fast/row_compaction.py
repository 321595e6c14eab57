"""Dropping finished rows from a decode batch, scoped to :func:`selfie_tl.generate`.

When some rows of a greedy batch have produced their end-of-sequence token, the stock loop
keeps them in the batch (emitting that token again) until the longest row ends. Dropping
them instead means gathering the KV cache - and every per-row state of the loop - to the
rows still running. Each remaining row's computation is unchanged; only the batch shape of
the matrix products shrinks.

A hook on the model would see the smaller batch, so :func:`any_hook_attached` tells the
loop when to keep the rows instead (then every hook sees exactly the stock tensors).
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxtyping import Int
from torch import Tensor, nn
from torch.nn.modules import module as _torch_module
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from selfie_tl.fast.attention import DecodeKVCacheEntry


def any_hook_attached(model: HookedTransformer, modules: Sequence[nn.Module] | None = None) -> bool:
    """Whether anything could observe a forward: a hook on any hook point or module of the
    model (forward, pre-forward or backward) or a global torch module hook.

    ``modules``, when given, is ``list(model.modules())`` taken earlier: walking the module
    tree costs milliseconds on a large model, and a caller that asks on every decode step
    (the module tree does not change meanwhile) takes the list once.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> any_hook_attached(model)
        False
        >>> with model.hooks(fwd_hooks=[("hook_embed", lambda t, hook: t)]):
        ...     any_hook_attached(model)
        True
    """
    if _torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks:
        return True
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
        for m in (model.modules() if modules is None else modules)
    )


def select_cache_rows(cache: TransformerLensKeyValueCache, rows: Int[Tensor, " keep"]) -> None:
    """Keep only batch rows ``rows`` of every entry of ``cache`` and of its attention mask,
    in place (stock entries and :class:`~selfie_tl.fast.attention.DecodeKVCacheEntry`).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> cache = TransformerLensKeyValueCache.init_cache(model.cfg, "cpu", 3)
        >>> _ = model(torch.zeros(3, 2, dtype=torch.long), past_kv_cache=cache)
        >>> select_cache_rows(cache, torch.tensor([2, 0]))
        >>> tuple(cache.entries[0].past_keys.shape[:2]), tuple(cache.previous_attention_mask.shape)
        ((2, 2), (2, 2))
    """
    rows = rows.to(cache.previous_attention_mask.device)
    for entry in cache.entries:
        if isinstance(entry, DecodeKVCacheEntry):
            entry.select_rows(rows.to(entry.past_keys.device))
        else:
            r = rows.to(entry.past_keys.device)
            entry.past_keys = entry.past_keys.index_select(0, r)
            entry.past_values = entry.past_values.index_select(0, r)
    cache.previous_attention_mask = cache.previous_attention_mask.index_select(0, rows)


__all__ = ["any_hook_attached", "select_cache_rows"]
