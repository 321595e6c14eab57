"""A faster single-token decode step for rotary attention, scoped to :func:`generate`.

On every cached decode step TransformerLens' attention re-rotates the *whole* key cache
(``apply_rotary(k, 0, attention_mask)`` after ``past_kv_cache_entry.append``), grows the
cache with ``torch.cat``, expands keys and values to every query head with
``repeat_interleave`` and feeds matmul non-contiguous layouts that it copies. For a small
model on CPU these copies cost more than the attention arithmetic.

:class:`DecodeKVCacheEntry` keeps keys and values in preallocated buffers and memoises the
rotated keys: the rotation of a cached position depends only on its own key and position
(and the attention-mask prefix, which never changes), so each step rotates only the new
positions, with TransformerLens' own ``apply_rotary``; the memo is elementwise identical
to what the stock path recomputes. :func:`fast_decode_attention` installs, for the
duration of a ``with`` block, an instance-level ``forward`` on each attention module that
takes the fast route for a one-token query against a :class:`DecodeKVCacheEntry` and
defers to the class's own ``forward`` otherwise. Grouped-query heads are handled with a
grouped matmul view instead of ``repeat_interleave``.

Every hook point fires as in the stock forward, in the same order and with the same
tensors (``hook_rot_k`` receives the full rotated keys, ``hook_attn_scores`` and
``hook_pattern`` the ``[batch, head, 1, key_pos]`` scores and pattern, ``hook_z`` the
``[batch, 1, head, d_head]`` z). When ``hook_rot_k`` has a hook it gets a copy, and the
scores are computed from whatever it returns, exactly as the stock path does.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from torch.nn.modules import module as _torch_module
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.components import AbstractAttention
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities.activation_functions import apply_softcap

_OLMO_QK_NORM = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")


class DecodeKVCacheEntry(TransformerLensKeyValueCacheEntry):
    """A KV-cache entry with preallocated buffers and a memo of rotated keys.

    ``past_keys`` / ``past_values`` are views ``[batch, pos_so_far, kv_heads, d_head]`` of
    the buffers, so the stock attention forward works with it unchanged. The buffers grow
    (doubling) if a sequence outlives the capacity.
    """

    def __init__(self, batch: int, n_heads: int, d_head: int, capacity: int, device: Any, dtype: torch.dtype):
        self._keys = torch.empty(batch, capacity, n_heads, d_head, device=device, dtype=dtype)
        # values as [batch, head, pos, d_head] and rotated keys transposed, as
        # [batch, head, d_head, pos]: the layouts the attention matmuls read without a copy
        self._values = torch.empty(batch, n_heads, capacity, d_head, device=device, dtype=dtype)
        self._rot_keys_t = torch.empty(batch, n_heads, d_head, capacity, device=device, dtype=dtype)
        self.length = 0
        self.rotated = 0  # positions of _rot_keys that are valid
        self._rotary_table: Tensor | None = None  # the rotary_cos the memo was built with
        super().__init__(past_keys=self._keys[:, :0], past_values=self._values[:, :, :0].transpose(1, 2))

    @property
    def capacity(self) -> int:
        return self._keys.shape[1]

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * self.capacity)
        keys = self._keys.new_empty(self._keys.shape[0], size, *self._keys.shape[2:])
        keys[:, : self.length] = self._keys[:, : self.length]
        values = self._values.new_empty(*self._values.shape[:2], size, self._values.shape[3])
        values[:, :, : self.length] = self._values[:, :, : self.length]
        rot = self._rot_keys_t.new_empty(*self._rot_keys_t.shape[:3], size)
        rot[..., : self.rotated] = self._rot_keys_t[..., : self.rotated]
        self._keys, self._values, self._rot_keys_t = keys, values, rot

    def append(self, new_keys: Tensor, new_values: Tensor):
        if self.frozen:
            return super().append(new_keys, new_values)
        start, end = self.length, self.length + new_keys.shape[1]
        if end > self.capacity:
            self._grow(end)
        self._keys[:, start:end] = new_keys
        self._values[:, :, start:end] = new_values.transpose(1, 2)
        self.length = end
        self.past_keys = self._keys[:, :end]
        self.past_values = self._values[:, :, :end].transpose(1, 2)
        return self.past_keys, self.past_values

    def select_rows(self, rows: Tensor) -> None:
        """Keep only batch rows ``rows`` (a 1-D index), in that order: the buffers, the
        rotated-key memo and the views are gathered, nothing is recomputed."""
        self._keys = self._keys.index_select(0, rows)
        self._values = self._values.index_select(0, rows)
        self._rot_keys_t = self._rot_keys_t.index_select(0, rows)
        self.past_keys = self._keys[:, : self.length]
        self.past_values = self._values[:, :, : self.length].transpose(1, 2)

    def rotated_keys_t(self, attn: AbstractAttention, attention_mask: Tensor | None) -> Tensor:
        """``[batch, kv_head, d_head, pos_so_far]``: the cached keys rotated as the stock
        ``attn.apply_rotary(keys, 0, attention_mask)`` would, rotating only new positions."""
        if self._rotary_table is not attn.rotary_cos:  # first use, or the table was rebuilt
            self.rotated = 0
        start, end = self.rotated, self.length
        if end > start:
            new = attn.apply_rotary(self._keys[:, start:end], start, attention_mask)
            self._rot_keys_t[..., start:end] = new.permute(0, 2, 3, 1)
            self.rotated = end
        self._rotary_table = attn.rotary_cos
        return self._rot_keys_t[..., :end]


def init_decode_cache(model: HookedTransformer, batch: int, capacity: int) -> TransformerLensKeyValueCache:
    """A :class:`TransformerLensKeyValueCache` whose entries are :class:`DecodeKVCacheEntry`."""
    cfg = model.cfg
    n_heads = cfg.n_key_value_heads if cfg.n_key_value_heads is not None else cfg.n_heads
    cache = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, batch)
    cache.entries = [
        DecodeKVCacheEntry(batch, n_heads, cfg.d_head, capacity, entry.past_keys.device, cfg.dtype)
        for entry in cache.entries
    ]
    return cache


def _hooked(hook_point: HookPoint) -> bool:
    return bool(hook_point._forward_hooks or hook_point._forward_pre_hooks)


def _globally_hooked() -> bool:
    return bool(_torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks)


def supports_fast_decode(model: HookedTransformer) -> bool:
    """Whether the model's attention is one the fast decode step reproduces: rotary,
    causal, global, on one device, without the per-architecture extras the stock forward
    handles (QK-norm on the full vector, clipping, log-n scaling, dynamic NTK, sinks,
    per-head results, 4-bit weights)."""
    cfg = model.cfg
    if cfg.positional_embedding_type != "rotary" or cfg.n_devices != 1 or cfg.attention_dir != "causal":
        return False
    if cfg.original_architecture in _OLMO_QK_NORM or getattr(cfg, "clip_qkv", None) is not None:
        return False
    extras = ("use_logn_attn", "use_dynamic_ntk_rope", "use_attention_sinks", "use_attn_result",
              "load_in_4bit", "ungroup_grouped_query_attention")  # fmt: skip
    if any(getattr(cfg, name, False) for name in extras):
        return False
    for block in model.blocks:
        attn = getattr(block, "attn", None)
        if not isinstance(attn, AbstractAttention) or attn.attn_type != "global":
            return False
        if getattr(attn, "_attention_dir_override", None) not in (None, "causal"):
            return False
    return True


def _decode_forward(
    self: AbstractAttention,
    query_input: Tensor,
    key_input: Tensor,
    value_input: Tensor,
    past_kv_cache_entry: TransformerLensKeyValueCacheEntry | None = None,
    additive_attention_mask: Tensor | None = None,
    attention_mask: Tensor | None = None,
    position_bias: Tensor | None = None,
) -> Tensor:
    stock = type(self).forward
    entry = past_kv_cache_entry
    if (
        not isinstance(entry, DecodeKVCacheEntry)
        or entry.frozen
        or query_input.shape[1] != 1
        or additive_attention_mask is not None
        or position_bias is not None
        or self.training
        or _globally_hooked()
    ):
        return stock(
            self, query_input, key_input, value_input, past_kv_cache_entry=past_kv_cache_entry,
            additive_attention_mask=additive_attention_mask, attention_mask=attention_mask,
            position_bias=position_bias,
        )  # fmt: skip

    q, k, v = self.calculate_qkv_matrices(query_input, key_input, value_input)  # hook_q/k/v
    offset = entry.length
    entry.append(k, v)
    q = self.hook_rot_q(self.apply_rotary(q, offset, attention_mask))  # [batch, 1, head, d_head]
    rot_k_t = entry.rotated_keys_t(self, attention_mask)  # [batch, kv_head, d_head, key_pos]
    if _hooked(self.hook_rot_k):
        # A copy, so a hook that edits its input in place cannot touch the memo; the
        # scores then use whatever it returns, through the stock computation.
        k_full = self.hook_rot_k(rot_k_t.permute(0, 3, 1, 2).clone())
        attn_scores = self.calculate_attention_scores(q, k_full)
    else:
        attn_scores = grouped_scores(self, q, rot_k_t)
    attn_scores = self.apply_causal_mask(attn_scores, offset, attention_mask)
    # as the stock forward (a free view after :func:`selfie_tl.models.optimize_layout`)
    w = einops.rearrange(self.W_O, "head_index d_head d_model -> d_model (head_index d_head)").contiguous()
    return weigh_values(self, self.hook_attn_scores(attn_scores), entry, w, self.b_O, hooked=True)


def grouped_scores(
    attn: AbstractAttention, q: Float[Tensor, "batch 1 head d_head"], rot_k_t: Float[Tensor, "batch kv_head d_head key_pos"]
) -> Float[Tensor, "batch head 1 key_pos"]:
    """Attention scores of one query position against the rotated-key memo, scaled and
    soft-capped as the stock ``calculate_attention_scores``; head ``h`` reads kv head
    ``h // group`` (``repeat_interleave``) through a grouped matmul view instead of a copy."""
    batch, n_heads, d_head = q.shape[0], q.shape[2], q.shape[3]
    n_kv, key_pos = rot_k_t.shape[1], rot_k_t.shape[3]
    scores = torch.matmul(q.reshape(batch, n_kv, n_heads // n_kv, d_head), rot_k_t) / attn.attn_scale
    scores = apply_softcap(scores, attn.cfg.attn_scores_soft_cap)
    return scores.view(batch, n_heads, 1, key_pos)


def weigh_values(
    attn: AbstractAttention,
    scores: Float[Tensor, "batch head 1 key_pos"],
    entry: DecodeKVCacheEntry,
    w_o: Float[Tensor, "d_model head_x_d_head"],
    b_o: Tensor | None,
    *,
    hooked: bool,
) -> Float[Tensor, "batch 1 d_model"]:
    """From masked scores to the attention output, as the stock forward: softmax (a fully
    masked row gives zeros, not NaN), the pattern times the cached values, then ``W_O``.
    ``hooked`` runs ``hook_pattern`` and ``hook_z`` on the way (the decode step under
    :func:`fast_decode_attention`); the lean step passes ``False``."""
    batch, n_heads, _, key_pos = scores.shape
    values = entry._values[:, :, :key_pos]  # [batch, kv_head, key_pos, d_head]
    n_kv, d_head = values.shape[1], values.shape[3]
    pattern = F.softmax(scores, dim=-1)
    pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
    if hooked:
        pattern = attn.hook_pattern(pattern)  # [batch, head, 1, key_pos]
    pattern = pattern.to(device=values.device, dtype=values.dtype)
    z = torch.matmul(pattern.reshape(batch, n_kv, n_heads // n_kv, key_pos), values)  # [batch, kv, group, d_head]
    z = z.reshape(batch, 1, n_heads, d_head)
    if hooked:
        z = attn.hook_z(z)
    return F.linear(z.reshape(batch, 1, n_heads * d_head).to(w_o.dtype), w_o, b_o)


@contextmanager
def fast_decode_attention(model: HookedTransformer) -> Iterator[bool]:
    """Within the block, attention modules take the fast one-token decode step when called
    with a :class:`DecodeKVCacheEntry`; yields whether it was installed. On exit (also on
    an exception) the modules are exactly as before: the instance ``forward`` is removed."""
    installed: list[AbstractAttention] = []
    try:
        if supports_fast_decode(model):
            for block in model.blocks:
                attn = block.attn
                if "forward" in vars(attn):  # someone else's instance override: leave it
                    continue
                attn.forward = types.MethodType(_decode_forward, attn)
                installed.append(attn)
        yield bool(installed)
    finally:
        for attn in installed:
            vars(attn).pop("forward", None)
