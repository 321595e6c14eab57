"""drop_finished: rows that ended leave the decode batch; tokens and lengths equal the
stock loop's, every hook sees the stock tensors, nothing is left on the model."""

import pytest
import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from selfie_tl import generation
from selfie_tl.errors import NumericalError
from selfie_tl.fast.attention import init_decode_cache
from selfie_tl.fast.row_compaction import any_hook_attached, select_cache_rows
from selfie_tl.generation import generate, left_pad, residual_stream

MODELS = ["tiny_llama", "tiny_gpt2", "tiny_gemma2"]
STEPS = 10


def _batch(model):
    texts = ["hello there, world", "abc", "the cat sat", "zz top", "a b c d e f"]
    return left_pad([torch.tensor(model.tokenizer(t).input_ids) for t in texts])


def _staggered_eos(model, ids, mask, **kw):
    """End ids chosen so that rows end at different steps (some never)."""
    ref = generate(model, ids, STEPS, attention_mask=mask, eos_token_ids=[], **kw)
    first = {}
    for row in range(ids.shape[0]):
        for step, t in enumerate(ref.tokens[row].tolist()):
            first.setdefault(t, []).append(step)
    # tokens whose first appearance differs by row: pick a few early, distinct ones
    picks = sorted(first, key=lambda t: min(first[t]))[:3]
    return picks


def _compare(model, **kw):
    ids, mask = _batch(model)
    eos = _staggered_eos(model, ids, mask, **kw)
    on = generate(model, ids, STEPS, attention_mask=mask, eos_token_ids=eos, **kw)
    off = generate(model, ids, STEPS, attention_mask=mask, eos_token_ids=eos, drop_finished=False, **kw)
    assert torch.equal(on.tokens, off.tokens)
    assert on.lengths == off.lengths
    for row, length in enumerate(off.lengths):
        torch.testing.assert_close(on.probs[row, : length + 1], off.probs[row, : length + 1], rtol=0, atol=1e-5)
    return on, off


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fast_attention", [True, False])
def test_tokens_and_lengths_equal_stock(name, fast_attention, request, monkeypatch):
    model = request.getfixturevalue(name)
    sizes = []
    real = generation.select_cache_rows

    def spy(cache, rows):
        sizes.append(len(rows))
        return real(cache, rows)

    monkeypatch.setattr(generation, "select_cache_rows", spy)
    on, off = _compare(model, fast_attention=fast_attention)
    assert len(set(off.lengths)) > 1  # rows really end at different steps
    assert sizes and sizes == sorted(sizes, reverse=True) and sizes[-1] < 5  # the batch shrank
    dropped = [r for r, n in enumerate(off.lengths) if n < STEPS - 1]
    assert any(torch.isnan(on.probs[r, off.lengths[r] + 1 :]).all() for r in dropped)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("controls", [{"repetition_penalty": 1.3}, {"no_repeat_ngram_size": 2}])
def test_decoding_controls_equal_stock(name, controls, request):
    _compare(request.getfixturevalue(name), **controls)


def test_sampling_keeps_the_rows(tiny_llama):
    ids, mask = _batch(tiny_llama)
    eos = _staggered_eos(tiny_llama, ids, mask)
    outs = [
        generate(tiny_llama, ids, STEPS, attention_mask=mask, eos_token_ids=eos, do_sample=True,
                 generator=torch.Generator().manual_seed(3), drop_finished=flag)
        for flag in (True, False)
    ]  # fmt: skip
    assert torch.equal(outs[0].tokens, outs[1].tokens)
    assert torch.equal(outs[0].probs, outs[1].probs)


@pytest.mark.parametrize("name", MODELS)
def test_hooks_see_the_full_batch(name, request):
    model = request.getfixturevalue(name)
    names = ["hook_embed", "blocks.0.attn.hook_z", "blocks.1.hook_resid_post"]
    ids, mask = _batch(model)
    eos = _staggered_eos(model, ids, mask)

    def record(flag):
        seen = {n: [] for n in names}
        with model.hooks(fwd_hooks=[(n, lambda t, hook, n=n: seen[n].append(t.clone())) for n in names]):
            out = generate(model, ids, STEPS, attention_mask=mask, eos_token_ids=eos, drop_finished=flag)
        return out, seen

    (on, seen_on), (off, seen_off) = record(True), record(False)
    assert torch.equal(on.tokens, off.tokens) and torch.equal(on.probs, off.probs)
    for n in names:
        assert len(seen_on[n]) == len(seen_off[n]) > 1
        for a, b in zip(seen_on[n], seen_off[n], strict=True):
            assert a.shape[0] == ids.shape[0] and torch.equal(a, b), n


@pytest.mark.parametrize("fast", [True, False])
def test_select_cache_rows_equals_running_only_those_rows(tiny_llama, fast):
    ids, mask = _batch(tiny_llama)
    keep = torch.tensor([3, 0])

    def cache(batch):
        if fast:
            return init_decode_cache(tiny_llama, batch, ids.shape[1] + 2)
        return TransformerLensKeyValueCache.init_cache(tiny_llama.cfg, "cpu", batch)

    with torch.no_grad():
        full, part = cache(5), cache(2)
        residual_stream(tiny_llama, ids, full, mask)
        residual_stream(tiny_llama, ids[keep], part, mask[keep])
        select_cache_rows(full, keep)
        nxt = torch.tensor([[7], [9]])
        a, b = residual_stream(tiny_llama, nxt, full), residual_stream(tiny_llama, nxt, part)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_nonfinite_rows_are_named_in_the_full_batch(tiny_llama, monkeypatch):
    ids, mask = _batch(tiny_llama)
    eos = _staggered_eos(tiny_llama, ids, mask)
    ref = generate(tiny_llama, ids, STEPS, attention_mask=mask, eos_token_ids=eos, drop_finished=False)
    # the forward after step STEPS - 3 runs only the rows that have not ended by then
    live = [r for r in range(5) if ref.lengths[r] > STEPS - 3]
    assert 0 < len(live) < 5
    real, calls = generation.final_logits, []

    def poison(model, resid):
        calls.append(resid.shape[0])
        out = real(model, resid)
        if len(calls) == STEPS - 1:
            out = out.clone()
            out[-1] = float("nan")  # the last row of the compute batch
        return out

    monkeypatch.setattr(generation, "final_logits", poison)
    with pytest.raises(NumericalError) as err:
        generate(tiny_llama, ids, STEPS, attention_mask=mask, eos_token_ids=eos)
    assert calls[-1] == len(live) < 5  # rows were dropped
    assert err.value.rows == [live[-1]]  # named by its row in the full batch


def test_any_hook_attached(tiny_gpt2):
    assert not any_hook_attached(tiny_gpt2)
    handle = tiny_gpt2.blocks[1].mlp.register_forward_hook(lambda m, i, o: None)
    try:
        assert any_hook_attached(tiny_gpt2)
    finally:
        handle.remove()
    assert not any_hook_attached(tiny_gpt2)
