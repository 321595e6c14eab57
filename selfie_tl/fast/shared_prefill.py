"""The part of a SelfIE prefill that is the same for every row, computed once per call.

Every row of a SelfIE batch runs the same interpretation prompt; only the vectors written
into the residual entering block ``k`` at the placeholders differ. With causal attention
two parts of the prefill are therefore identical for every row:

* every position at layers ``< k`` (the injection has not happened yet), and
* every position before the first placeholder at *all* layers (nothing there attends to a
  placeholder).

:class:`SharedPrefill` computes both once, at batch 1: the keys and values of layers
``< k`` for the whole prompt, the residual entering block ``k``, and the keys and values of
layers ``>= k`` for the positions before the first placeholder. :meth:`SharedPrefill.run`
then copies them (broadcast) into a batch's fresh KV cache and runs only what differs:
positions from the first placeholder on, from block ``k`` up, with the injection hooks
shifted to those positions. The result is the same computation on the same values; only
the batch shape of some matrix products changes, which can move the last bit of a float.

Hook points fire differently on this path (the shared part at batch 1, the rest from block
``k`` on a shorter sequence), so :func:`shared_prefill_applies` allows it only while no
hook of any kind is attached to the model: with a user hook attached, SelfIE takes the
stock prefill and every hook sees exactly what it sees without this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.fast.row_compaction import any_hook_attached
from selfie_tl.hooks import HookFn

_POSITIONAL = ("standard", "rotary")


def shared_prefill_applies(model: HookedTransformer, k: int, split: int) -> bool:
    """Whether :class:`SharedPrefill` reproduces the stock prefill for this model and call.

    Args:
        model: the model.
        k: injection layer.
        split: first position where rows differ (the first placeholder).

    Returns:
        ``True`` when there is something to share (``k > 0`` or ``split > 0``), attention
        is causal on one device with standard or rotary positions, the model is in eval
        mode, and no hook (hook point, module or global torch hook) is attached.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> shared_prefill_applies(tiny_model(), 1, 2), shared_prefill_applies(tiny_model(), 0, 0)
        (True, False)
    """
    cfg = model.cfg
    if k <= 0 and split <= 0:
        return False
    if cfg.attention_dir != "causal" or cfg.n_devices != 1 or cfg.positional_embedding_type not in _POSITIONAL:
        return False
    return not model.training and not any_hook_attached(model)


BUILD_COST_PER_LAYER = 64
"""What building the shared part costs, in token-layers (one position through one block,
batched) per block of the model: the build is two extra forwards at batch 1, whose
per-block overhead on CPU equals about this much batched work (measured on SmolLM2-135M,
2 cores: at k=2 on the paper prompt sharing lost 60 ms at 8 rows and won 50 ms at 32)."""


def check_shared_prefill(value: Any) -> bool | str:
    """The ``shared_prefill`` switch: ``True``, ``False`` or ``"auto"``.

    Example:
        >>> check_shared_prefill("auto"), check_shared_prefill(False)
        ('auto', False)
    """
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, bool):
        return value
    raise InvalidArgumentError(f'shared_prefill must be True, False or "auto", got {value!r:.80}')


def shared_prefill_pays(n_layers: int, prompt_len: int, k: int, split: int, rows: int) -> bool:
    """Whether computing the shared part once saves more than it costs, for ``rows``
    interpretations in one call: the work no longer repeated, ``(rows - 1)`` times
    ``k * prompt_len + (n_layers - k) * split`` token-layers, must reach
    :data:`BUILD_COST_PER_LAYER` ``* n_layers``.

    Example:
        >>> shared_prefill_pays(30, 23, k=2, split=3, rows=8), shared_prefill_pays(30, 23, k=2, split=3, rows=32)
        (False, True)
        >>> shared_prefill_pays(30, 23, k=15, split=3, rows=8)
        True
    """
    k = min(max(k, 0), n_layers)
    shared = k * prompt_len + (n_layers - k) * split
    return (rows - 1) * shared >= BUILD_COST_PER_LAYER * n_layers


@dataclass
class SharedPrefill:
    """Keys, values and the residual entering block ``k`` shared by every row of a call.

    Attributes:
        k: injection layer.
        split: first position where rows differ (the first placeholder).
        resid_k: ``[1, pos, d_model]`` residual entering block ``k`` for the whole prompt.
        keys, values: per layer ``[1, len, kv_heads, d_head]``; ``len`` is the whole prompt
            for layers ``< k`` and ``split`` for the others.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> shared = SharedPrefill.build(model, model.to_tokens("abcd")[0], k=1, split=2)
        >>> [tuple(key.shape[:2]) for key in shared.keys]
        [(1, 4), (1, 2), (1, 2)]
    """

    k: int
    split: int
    resid_k: Float[Tensor, "1 pos d_model"]
    keys: list[Tensor]
    values: list[Tensor]

    @classmethod
    @torch.no_grad()
    def build(cls, model: HookedTransformer, prompt_ids: Int[Tensor, " pos"], k: int, split: int) -> SharedPrefill:
        """Run the shared part at batch 1 (no hooks are added)."""
        device = model.cfg.device
        ids = prompt_ids.to(device)[None]
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, 1)
        mask = torch.ones_like(ids)
        resid_k = model(ids, past_kv_cache=cache, attention_mask=mask, stop_at_layer=k)
        if split > 0 and k < model.cfg.n_layers:
            model(
                resid_k[:, :split], start_at_layer=k, stop_at_layer=model.cfg.n_layers, past_kv_cache=cache,
                attention_mask=mask[:, :split],
            )  # fmt: skip
        return cls(
            k=k, split=split, resid_k=resid_k,
            keys=[e.past_keys for e in cache.entries], values=[e.past_values for e in cache.entries],
        )  # fmt: skip

    @torch.no_grad()
    def run(
        self,
        model: HookedTransformer,
        cache: TransformerLensKeyValueCache,
        batch: int,
        hooks: Sequence[tuple[str, HookFn]],
    ) -> Float[Tensor, "batch new_pos d_model"]:
        """Fill a fresh (empty) batch cache with the shared part and run the rest.

        Args:
            model: the model the prefill was built on.
            cache: an empty cache for ``batch`` rows (stock or
                :class:`~selfie_tl.fast.attention.DecodeKVCacheEntry` entries).
            batch: rows.
            hooks: injection hooks for positions counted from ``split`` (active only here).

        Returns:
            ``[batch, pos - split, d_model]``: the residual before the final norm at the
            positions from ``split`` on, as the stock prefill's last positions.
        """
        for entry, key, value in zip(cache.entries, self.keys, self.values, strict=True):
            entry.append(key.expand(batch, -1, -1, -1), value.expand(batch, -1, -1, -1))
        pos = self.resid_k.shape[1]
        dtype = cache.previous_attention_mask.dtype
        cache.previous_attention_mask = torch.ones(batch, pos, dtype=dtype, device=self.resid_k.device)
        rest = self.resid_k[:, self.split :].expand(batch, -1, -1).contiguous()
        with model.hooks(fwd_hooks=list(hooks)):
            return model(
                rest, start_at_layer=self.k, stop_at_layer=model.cfg.n_layers, past_kv_cache=cache,
                attention_mask=cache.previous_attention_mask,
            )  # fmt: skip
