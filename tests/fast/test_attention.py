import pytest
import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from selfie_tl.fast.attention import (
    DecodeKVCacheEntry,
    fast_decode_attention,
    init_decode_cache,
    supports_fast_decode,
)
from selfie_tl.generation import final_logits, generate, residual_stream


def _prompt(model, left_pad: bool):
    ids = torch.tensor([model.tokenizer("hello there, world").input_ids] * 3)
    mask = torch.ones_like(ids)
    if left_pad:
        mask[0, :4] = 0
        mask[1, :1] = 0
    return ids, mask


def _decode_logits(model, ids, mask, steps, *, fast, capacity=None):
    """Greedy decoding by hand; returns the logits of every step."""
    if fast:
        cache = init_decode_cache(model, ids.shape[0], capacity or ids.shape[1] + steps)
        scope = fast_decode_attention(model)
    else:
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, ids.shape[0])
        scope = torch.no_grad()
    out = []
    with torch.no_grad(), scope:
        logits = final_logits(model, residual_stream(model, ids, cache, mask)[:, -1])
        for _ in range(steps):
            out.append(logits)
            nxt = logits.argmax(-1, keepdim=True)
            logits = final_logits(model, residual_stream(model, nxt, cache)[:, -1])
    return torch.stack(out, 1)


def _attn_state(model):
    return [dict(vars(block.attn)) for block in model.blocks]


def test_supported_architectures(tiny_llama, tiny_gpt2):
    assert supports_fast_decode(tiny_llama)
    assert not supports_fast_decode(tiny_gpt2)


@pytest.mark.parametrize("left_pad", [False, True])
def test_fast_decode_logits_equal_stock(tiny_llama, left_pad):
    ids, mask = _prompt(tiny_llama, left_pad)
    fast = _decode_logits(tiny_llama, ids, mask, 8, fast=True)
    stock = _decode_logits(tiny_llama, ids, mask, 8, fast=False)
    assert torch.equal(fast.argmax(-1), stock.argmax(-1))
    torch.testing.assert_close(fast, stock, rtol=0, atol=1e-5)


def test_cache_growth_beyond_capacity(tiny_llama):
    ids, mask = _prompt(tiny_llama, True)
    grown = _decode_logits(tiny_llama, ids, mask, 6, fast=True, capacity=2)
    stock = _decode_logits(tiny_llama, ids, mask, 6, fast=False)
    torch.testing.assert_close(grown, stock, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_name", ["tiny_llama", "tiny_gpt2"])
@pytest.mark.parametrize("left_pad", [False, True])
def test_generate_fast_equals_stock(model_name, left_pad, request):
    model = request.getfixturevalue(model_name)
    ids, mask = _prompt(model, left_pad)
    fast = generate(model, ids, 8, attention_mask=mask, eos_token_ids=[])
    stock = generate(model, ids, 8, attention_mask=mask, eos_token_ids=[], fast_attention=False)
    assert torch.equal(fast.tokens, stock.tokens)
    torch.testing.assert_close(fast.probs, stock.probs, rtol=0, atol=1e-6)


def _record(model, names, fast, edit_rot_k=False):
    seen = {name: [] for name in names}

    def recorder(name):
        def hook(t, hook):
            seen[name].append(t.detach().clone())
            if edit_rot_k and name.endswith("hook_rot_k"):
                t[:, -1] = 0.0  # in place, on the tensor the hook receives
                return t * 1.5

        return hook

    ids, mask = _prompt(model, True)
    with model.hooks(fwd_hooks=[(name, recorder(name)) for name in names]):
        out = generate(model, ids, 5, attention_mask=mask, eos_token_ids=[], fast_attention=fast)
    return out, seen


def test_user_hooks_see_the_same_tensors(tiny_llama):
    names = [
        "blocks.0.attn.hook_rot_k", "blocks.0.attn.hook_rot_q", "blocks.0.attn.hook_pattern",
        "blocks.1.attn.hook_attn_scores", "blocks.1.attn.hook_z", "blocks.2.attn.hook_k",
    ]  # fmt: skip
    fast_out, fast_seen = _record(tiny_llama, names, True)
    stock_out, stock_seen = _record(tiny_llama, names, False)
    assert torch.equal(fast_out.tokens, stock_out.tokens)
    for name in names:
        assert len(fast_seen[name]) == len(stock_seen[name]) == 5  # prefill + 4 decode steps
        for a, b in zip(fast_seen[name], stock_seen[name], strict=True):
            assert a.shape == b.shape, name
            if name.startswith("blocks.0.") and name.endswith(("hook_rot_k", "hook_rot_q")):
                assert torch.equal(a, b), name  # the rotated-key memo is exact
            else:  # later layers see last-bit differences of the grouped-head matmul
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=name)


def test_a_hook_editing_rot_k_acts_as_in_the_stock_path(tiny_llama):
    names = ["blocks.0.attn.hook_rot_k"]
    fast_out, fast_seen = _record(tiny_llama, names, True, edit_rot_k=True)
    stock_out, stock_seen = _record(tiny_llama, names, False, edit_rot_k=True)
    assert torch.equal(fast_out.tokens, stock_out.tokens)
    torch.testing.assert_close(fast_out.probs, stock_out.probs, rtol=0, atol=1e-6)
    for a, b in zip(fast_seen[names[0]], stock_seen[names[0]], strict=True):
        assert torch.equal(a, b)  # the edit of one step never leaks into the next


def test_fast_path_is_installed_only_during_generate(tiny_llama):
    before = _attn_state(tiny_llama)
    during = []

    def spy(t, hook):
        during.append("forward" in vars(tiny_llama.blocks[0].attn))
        return t

    ids, mask = _prompt(tiny_llama, False)
    with tiny_llama.hooks(fwd_hooks=[("hook_embed", spy)]):
        generate(tiny_llama, ids, 3, attention_mask=mask, eos_token_ids=[])
    assert during == [True, True, True]
    assert _attn_state(tiny_llama) == before
    assert all("forward" not in vars(block.attn) for block in tiny_llama.blocks)


def test_modules_restored_after_an_exception(tiny_llama):
    before = _attn_state(tiny_llama)
    calls = []

    def boom(t, hook):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return t

    ids, mask = _prompt(tiny_llama, False)
    with (
        pytest.raises(RuntimeError, match="boom"),
        tiny_llama.hooks(fwd_hooks=[("blocks.1.attn.hook_pattern", boom)]),
    ):
        generate(tiny_llama, ids, 6, attention_mask=mask, eos_token_ids=[])
    assert _attn_state(tiny_llama) == before


def test_stock_forward_with_a_decode_cache_outside_the_scope(tiny_llama):
    # Without the scope the preallocated cache is just a cache: stock attention uses it.
    ids, mask = _prompt(tiny_llama, True)
    cache = init_decode_cache(tiny_llama, ids.shape[0], 4)
    assert all(isinstance(e, DecodeKVCacheEntry) for e in cache.entries)
    with torch.no_grad():
        resid = residual_stream(tiny_llama, ids, cache, mask)
        step = residual_stream(tiny_llama, ids[:, :1], cache)
    ref_cache = TransformerLensKeyValueCache.init_cache(tiny_llama.cfg, tiny_llama.cfg.device, ids.shape[0])
    with torch.no_grad():
        ref = residual_stream(tiny_llama, ids, ref_cache, mask)
        ref_step = residual_stream(tiny_llama, ids[:, :1], ref_cache)
    assert torch.equal(resid, ref)
    assert torch.equal(step, ref_step)
