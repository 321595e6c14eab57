"""shared_prefill: the part of the prefill common to every row, computed once, equal to
the stock per-row prefill; bypassed (stock tensors at every hook) while a hook is attached."""

import pytest
import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.fast.attention import init_decode_cache
from selfie_tl.fast.shared_prefill import SharedPrefill, shared_prefill_applies, shared_prefill_pays
from selfie_tl.generation import residual_stream
from selfie_tl.hooks import injection_hooks
from selfie_tl.interpret import generate_interpretations
from selfie_tl.prompts import InterpretationPrompt

MODELS = ["tiny_llama", "tiny_gpt2", "tiny_gemma2"]


def _prompt(model):
    return InterpretationPrompt(model.tokenizer, ("Hello there, ", 0, 0, " means:"))


def _vectors(model, n=7):
    return torch.randn(n, model.cfg.d_model, generator=torch.Generator().manual_seed(1)) * 2


def _both(model, **kw):
    prompt = _prompt(model)
    args = dict(max_new_tokens=8, batch_size=3, relevancy=True, **kw)
    on = generate_interpretations(model, _vectors(model), prompt, shared_prefill=True, **args)
    off = generate_interpretations(model, _vectors(model), prompt, shared_prefill=False, **args)
    return on, off


def _assert_equal(on, off):
    assert on.token_ids == off.token_ids
    assert on.texts == off.texts
    for a, b in zip(on.probs, off.probs, strict=True):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=0, atol=1e-5)
    for a, b in zip(on.relevancy, off.relevancy, strict=True):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("k", [0, 1, -1])
def test_interpretations_equal_stock_prefill(name, k, request):
    model = request.getfixturevalue(name)
    k = k % model.cfg.n_layers
    _assert_equal(*_both(model, k=k))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "settings",
    [{"mode": "add", "scale": 0.5}, {"overlay_strength": 0.5}, {"inject_layers": 2}, {"repetition_penalty": 1.3}],
)
def test_injection_settings_equal_stock_prefill(name, settings, request):
    model = request.getfixturevalue(name)
    _assert_equal(*_both(model, k=0, **settings))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fast", [True, False])
def test_run_fills_the_cache_as_the_stock_prefill(name, fast, request):
    model = request.getfixturevalue(name)
    prompt, vectors, k = _prompt(model), _vectors(model, 3), 1
    split = min(prompt.placeholder_positions)
    ids = prompt.input_ids[None].expand(3, -1)

    def cache():
        if fast:
            return init_decode_cache(model, 3, ids.shape[1] + 2)
        return TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 3)

    stock_cache, shared_cache = cache(), cache()
    with torch.no_grad(), model.hooks(fwd_hooks=injection_hooks(model, vectors, prompt.placeholder_positions, k)):
        stock = residual_stream(model, ids, stock_cache)
    shared = SharedPrefill.build(model, prompt.input_ids, k, split)
    shifted = injection_hooks(model, vectors, [p - split for p in prompt.placeholder_positions], k)
    rest = shared.run(model, shared_cache, 3, shifted)
    torch.testing.assert_close(rest, stock[:, split:], rtol=0, atol=1e-5)
    for a, b in zip(shared_cache.entries, stock_cache.entries, strict=True):
        torch.testing.assert_close(a.past_keys, b.past_keys, rtol=0, atol=1e-5)
        torch.testing.assert_close(a.past_values, b.past_values, rtol=0, atol=1e-5)
    assert torch.equal(shared_cache.previous_attention_mask.long(), torch.ones(3, ids.shape[1], dtype=torch.long))


def test_built_once_per_call(tiny_llama, monkeypatch):
    builds = []
    real = SharedPrefill.build

    def spy(*args, **kwargs):
        builds.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(SharedPrefill, "build", staticmethod(spy))
    prompt = _prompt(tiny_llama)
    args = {"k": 1, "max_new_tokens": 3, "batch_size": 2}
    generate_interpretations(tiny_llama, _vectors(tiny_llama), prompt, shared_prefill=True, **args)
    assert builds == [1]  # 4 batches, one shared prefill
    generate_interpretations(tiny_llama, _vectors(tiny_llama, 1), prompt, shared_prefill=True, **args)
    assert builds == [1, 1]  # True: whenever it applies, even for one vector
    generate_interpretations(tiny_llama, _vectors(tiny_llama, 1), prompt, **args)
    assert builds == [1, 1]  # "auto": one vector has nothing to share with
    generate_interpretations(tiny_llama, _vectors(tiny_llama, 40), prompt, **args)
    assert builds == [1, 1, 1]  # "auto": 40 vectors do
    generate_interpretations(tiny_llama, _vectors(tiny_llama, 40), prompt, shared_prefill=False, **args)
    assert builds == [1, 1, 1]


def test_pays_counts_the_work_saved_against_the_build():
    # 30 blocks, 23-token prompt, first placeholder at 3 (the paper prompt on SmolLM2)
    assert not shared_prefill_pays(30, 23, k=2, split=3, rows=1)
    assert not shared_prefill_pays(30, 23, k=2, split=3, rows=8)  # 7 x 130 token-layers < 64 x 30
    assert shared_prefill_pays(30, 23, k=2, split=3, rows=32)
    assert shared_prefill_pays(30, 23, k=15, split=3, rows=8)  # 7 x 390
    assert shared_prefill_pays(30, 23, k=40, split=0, rows=4) == (3 * 30 * 23 >= 64 * 30)  # k capped at n_layers


@pytest.mark.parametrize("bad", ["yes", 1, None, "AUTO"])
def test_switch_is_checked(tiny_llama, bad):
    with pytest.raises(InvalidArgumentError, match="shared_prefill must be True, False or \"auto\""):
        generate_interpretations(tiny_llama, _vectors(tiny_llama, 2), shared_prefill=bad, max_new_tokens=2, k=1)


def test_applies_only_without_hooks(tiny_llama, tiny_gpt2):
    assert shared_prefill_applies(tiny_llama, 1, 3)
    assert not shared_prefill_applies(tiny_llama, 0, 0)  # nothing to share
    with tiny_llama.hooks(fwd_hooks=[("blocks.2.hook_resid_post", lambda t, hook: t)]):
        assert not shared_prefill_applies(tiny_llama, 1, 3)
    handle = tiny_gpt2.blocks[0].register_forward_pre_hook(lambda m, i: None)
    try:
        assert not shared_prefill_applies(tiny_gpt2, 1, 3)
    finally:
        handle.remove()
    assert shared_prefill_applies(tiny_gpt2, 1, 3)


@pytest.mark.parametrize("name", MODELS)
def test_hooks_see_the_stock_tensors(name, request):
    """With a user hook attached the stock prefill runs: every hook sees the same tensors."""
    model = request.getfixturevalue(name)
    names = ["hook_embed", "blocks.0.hook_resid_pre", "blocks.1.attn.hook_pattern", "blocks.1.hook_resid_post"]

    def record(switch):
        seen = {n: [] for n in names}
        hooks = [(n, lambda t, hook, n=n: seen[n].append(t.clone())) for n in names]
        out = generate_interpretations(
            model, _vectors(model, 4), _prompt(model), k=1, max_new_tokens=4, batch_size=4, relevancy=False,
            fwd_hooks=hooks, shared_prefill=switch,
        )  # fmt: skip
        return out, seen

    (on, seen_on), (off, seen_off) = record(True), record(False)
    assert on.token_ids == off.token_ids
    assert seen_on["hook_embed"][0].shape[:2] == (4, len(_prompt(model)))  # the whole prompt at once
    for n in names:
        assert len(seen_on[n]) == len(seen_off[n]) >= 1
        for a, b in zip(seen_on[n], seen_off[n], strict=True):
            assert torch.equal(a, b), n


def test_nothing_left_on_the_model(tiny_gemma2):
    before = [dict(vars(m)) for m in tiny_gemma2.modules()]
    generate_interpretations(tiny_gemma2, _vectors(tiny_gemma2), _prompt(tiny_gemma2), k=1, max_new_tokens=3)
    assert [dict(vars(m)).keys() for m in tiny_gemma2.modules()] == [b.keys() for b in before]
