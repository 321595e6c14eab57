"""A lean one-token decode step for unhooked Llama-style models, scoped to :func:`generate`.

With nothing attached to the model, a cached decode step through ``HookedTransformer.forward``
spends a good share of its time outside the matrix products: about twenty ``nn.Module``
calls per block (hook points that return their input, norms, attention, MLP), ``einops``
weight views rebuilt on every call, the rotary position ids and the causal mask recomputed
by every layer although they are the same for all of them, device checks. For a small
model on CPU that is several milliseconds per step.

:class:`LeanDecoder` runs the same arithmetic, in the same order, on the same tensors, as
the stock block forward with :mod:`selfie_tl.fast.attention`'s decode step - only without
that bookkeeping:

* weight views (``einops`` merges of ``W_Q``/``W_K``/``W_V``/``W_O``, ``.T.contiguous()`` of
  the MLP and unembedding weights) are taken once per :func:`generate` call;
* rotary position ids and the causal-and-padding mask are computed once per step and
  shared by every layer (each layer still reads its own ``rotary_cos``/``rotary_sin``);
* the rotated key of the new position is written into the
  :class:`~selfie_tl.fast.attention.DecodeKVCacheEntry` memo with the query's rotation.

Every elementwise and matrix operation is the stock one with the same operands, so the
residual stream is bit-identical (the tests compare it with ``torch.equal`` on tiny Llama-like
models, grouped-query and not, and on the default model).

It applies only when nothing could observe the difference: :func:`supports_lean_decode`
checks the architecture once per call, and :meth:`LeanDecoder.ready` checks eval mode and
that **no hook of any kind** is attached (hook points, module hooks, global torch hooks)
before every step; :func:`generate` otherwise takes the stock forward, so a hook attached
mid-generation (by another hook, say) fires as it would without this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.components import Attention as _Attention
from transformer_lens.components import GroupedQueryAttention, RMSNorm, RMSNormPre, TransformerBlock
from transformer_lens.components.mlps.gated_mlp import GatedMLP
from transformer_lens.utilities.tensors import get_offset_position_ids

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.fast.attention import DecodeKVCacheEntry, grouped_scores, supports_fast_decode, weigh_values
from selfie_tl.fast.row_compaction import any_hook_attached

_ATTENTION = (_Attention, GroupedQueryAttention)
_NORMS = (RMSNorm, RMSNormPre)
# Block-level options under which TransformerBlock.forward does something other than
# resid + attn(ln1(resid)) then + mlp(ln2(.)).
_BLOCK_EXTRAS = ("use_attn_in", "use_split_qkv_input", "use_normalization_before_and_after", "attn_only",
                 "parallel_attn_mlp", "use_qk_norm", "post_embedding_ln")  # fmt: skip


def supports_lean_decode(model: HookedTransformer) -> bool:
    """Whether the model is one :class:`LeanDecoder` reproduces: what
    :func:`~selfie_tl.fast.attention.supports_fast_decode` accepts, built from stock
    pre-norm ``TransformerBlock`` s with RMS norms and a gated MLP.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> supports_lean_decode(tiny_model("llama")), supports_lean_decode(tiny_model("gpt2"))
        (True, False)
    """
    cfg = model.cfg
    if not supports_fast_decode(model):
        return False
    if any(getattr(cfg, name, False) for name in _BLOCK_EXTRAS) or cfg.is_layer_norm_activation():
        return False
    if cfg.normalization_type not in ("RMS", "RMSPre") or type(model.ln_final) not in _NORMS:
        return False
    for block in model.blocks:
        if type(block) is not TransformerBlock or type(block.attn) not in _ATTENTION:
            return False
        if type(block.ln1) not in _NORMS or type(block.ln2) not in _NORMS or type(block.mlp) is not GatedMLP:
            return False
        if "forward" in vars(block) or any("forward" in vars(m) for m in (block.ln1, block.ln2, block.mlp)):
            return False  # an instance override we do not know
    return True


def _rms(norm: RMSNorm | RMSNormPre, x: Tensor) -> Tensor:
    # RMSNorm(Pre).forward without its hook points: half precision is normalised in float32
    dtype = norm.cfg.dtype
    if dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)
    x = (x / (x.pow(2).mean(-1, keepdim=True) + norm.eps).sqrt()).to(dtype)
    return x * norm.w if isinstance(norm, RMSNorm) else x


@dataclass
class _Layer:
    block: TransformerBlock
    w_q: Tensor
    b_q: Tensor | None
    w_k: Tensor
    b_k: Tensor | None
    w_v: Tensor
    b_v: Tensor | None
    w_o: Tensor
    b_o: Tensor | None
    w_gate: Tensor
    w_in: Tensor
    b_in: Tensor | None
    w_out: Tensor
    b_out: Tensor | None


def _nonzero(b: Tensor) -> Tensor | None:
    # Adding a bias of zeros changes no value (x + 0.0 == x), so an all-zero bias is
    # dropped: F.linear then runs one matrix product instead of a fill and a product.
    return b if bool(b.any()) else None


def _flat(w: Tensor, b: Tensor) -> tuple[Tensor, Tensor | None]:
    # the views simple_attn_linear builds on every call
    return (einops.rearrange(w, "head_index d_model d_head -> (head_index d_head) d_model"),
            _nonzero(einops.rearrange(b, "head_index d_head -> (head_index d_head)")))  # fmt: skip


class LeanDecoder:
    """One cached decode step of an unhooked supported model (see the module docstring).

    Build it once per generation, before any scoped instance override such as
    :func:`~selfie_tl.fast.block.shared_ln1` is installed (it checks the architecture and
    takes the weight views then), and call :meth:`step` only while :meth:`ready` holds.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.fast.attention import init_decode_cache, fast_decode_attention
        >>> from selfie_tl.generation import residual_stream
        >>> model = tiny_model("llama")
        >>> ids = torch.tensor([[5, 6, 7]])
        >>> caches = [init_decode_cache(model, 1, 8) for _ in range(2)]
        >>> with fast_decode_attention(model):
        ...     _ = [residual_stream(model, ids, c) for c in caches]
        ...     stock = residual_stream(model, torch.tensor([[9]]), caches[0])
        >>> torch.equal(LeanDecoder(model).step(torch.tensor([[9]]), caches[1]), stock)
        True
    """

    def __init__(self, model: HookedTransformer):
        if not supports_lean_decode(model):
            raise InvalidArgumentError(
                f"the lean decode step does not support {model.cfg.model_name!r} "
                f"({model.cfg.original_architecture}); check supports_lean_decode(model) first"
            )
        self.model = model
        self.modules = list(model.modules())  # for the per-step hook check
        self.layers: list[_Layer] = []
        self.positions = model.cfg.n_ctx  # positions every layer's rotary table covers
        for block in model.blocks:
            attn, mlp = block.attn, block.mlp
            w_q, b_q = _flat(attn.W_Q, attn.b_Q)
            grouped = isinstance(attn, GroupedQueryAttention)  # its K/V weights are the unrepeated ones
            w_k, b_k = _flat(attn._W_K, attn._b_K) if grouped else _flat(attn.W_K, attn.b_K)
            w_v, b_v = _flat(attn._W_V, attn._b_V) if grouped else _flat(attn.W_V, attn.b_V)
            w_o = einops.rearrange(attn.W_O, "head_index d_head d_model -> d_model (head_index d_head)").contiguous()
            self.positions = min(self.positions, attn.rotary_cos.shape[0])
            self.layers.append(
                _Layer(block, w_q, b_q, w_k, b_k, w_v, b_v, w_o, _nonzero(attn.b_O),
                       mlp.W_gate.T.contiguous(), mlp.W_in.T.contiguous(), _nonzero(mlp.b_in),
                       mlp.W_out.T.contiguous(), _nonzero(mlp.b_out))
            )  # fmt: skip

    def ready(self, cache: TransformerLensKeyValueCache) -> bool:
        """Whether :meth:`step` may take the next position of ``cache`` now: the model is
        in eval mode with no hook of any kind attached (anything attached sees the stock
        forward instead), the cache's entries are unfrozen
        :class:`~selfie_tl.fast.attention.DecodeKVCacheEntry` s, and the rotary tables reach
        the position (the stock forward extends them otherwise)."""
        entries = cache.entries
        return (
            not self.model.training
            and not any_hook_attached(self.model, self.modules)
            and not cache.frozen
            and all(isinstance(e, DecodeKVCacheEntry) and not e.frozen for e in entries)
            and cache.previous_attention_mask.shape[1] < self.positions
        )

    def step(
        self, tokens: Int[Tensor, "batch 1"], cache: TransformerLensKeyValueCache
    ) -> Float[Tensor, "batch 1 d_model"]:
        """The residual after the last block for one new token per row, appending to
        ``cache`` exactly as ``model(tokens, past_kv_cache=cache, attention_mask=ones,
        stop_at_layer=n_layers)`` does."""
        model = self.model
        mask = cache.append_attention_mask(torch.ones_like(tokens))  # [batch, key_pos]
        offset = mask.shape[1] - 1
        positions = get_offset_position_ids(offset, mask)  # [batch, 1], as every layer's apply_rotary
        # every layer's apply_causal_mask builds this same mask (all blocks are global)
        final_mask = self.layers[0].block.attn._make_causal_mask(1, offset + 1, offset, mask.device)
        final_mask = final_mask & mask[:, None, None, :].bool()
        resid = model.embed.W_E[tokens, :]
        for i, layer in enumerate(self.layers):
            entry = cache.entries[i]
            attn = layer.block.attn
            x = _rms(layer.block.ln1, resid)
            batch = x.shape[0]
            q = F.linear(x, layer.w_q, layer.b_q).reshape(batch, 1, attn.cfg.n_heads, -1)
            k = F.linear(x, layer.w_k, layer.b_k).reshape(batch, 1, layer.w_k.shape[0] // q.shape[3], -1)
            v = F.linear(x, layer.w_v, layer.b_v).reshape(batch, 1, k.shape[2], -1)
            entry.append(k, v)
            cos = attn.rotary_cos[positions, None, :]
            sin = attn.rotary_sin[positions, None, :]
            q = _rotate(attn, q, cos, sin)
            if entry.rotated == offset and entry._rotary_table is attn.rotary_cos:
                entry._rot_keys_t[..., offset] = _rotate(attn, k, cos, sin)[:, 0]
                entry.rotated = offset + 1
            rot_k_t = entry.rotated_keys_t(attn, mask)  # only rotates what the memo lacks
            scores = torch.where(final_mask, grouped_scores(attn, q, rot_k_t), attn.IGNORE)
            resid = resid + weigh_values(attn, scores, entry, layer.w_o, layer.b_o, hooked=False)
            x = _rms(layer.block.ln2, resid)
            post = layer.block.mlp.act_fn(F.linear(x, layer.w_gate)) * F.linear(x, layer.w_in)
            if layer.b_in is not None:
                post = post + layer.b_in
            resid = resid + F.linear(post, layer.w_out, layer.b_out)
        return resid


def _rotate(attn, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # AbstractAttention.apply_rotary with precomputed cos/sin rows
    rd = attn.cfg.rotary_dim
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    flipped = attn.rotate_every_two(x_rot)
    rotated = x_rot * cos + flipped * sin
    return rotated if x_pass.shape[-1] == 0 else torch.cat([rotated, x_pass], dim=-1)


__all__ = ["LeanDecoder", "supports_lean_decode"]
