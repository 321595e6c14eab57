"""shared_ln1: one ln1 per block during generate, equal to the stock path."""

import pytest
import torch

from selfie_tl.errors import NumericalError
from selfie_tl.fast.block import shared_ln1
from selfie_tl.generation import generate


def _ids(model):
    ids = torch.tensor([model.tokenizer("hello there, world").input_ids] * 3)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    return ids, mask


def _ln1_counts(model, on: bool, names=("blocks.0.ln1.hook_scale",)):
    seen = {n: [] for n in names}
    ids, mask = _ids(model)
    with model.hooks(fwd_hooks=[(n, lambda t, hook, n=n: seen[n].append(t.clone())) for n in names]):
        out = generate(model, ids, 4, attention_mask=mask, eos_token_ids=[], shared_ln1=on)
    return out, seen


@pytest.mark.parametrize("name", ["tiny_llama", "tiny_gpt2", "tiny_gemma2"])
@pytest.mark.parametrize("fast_attention", [True, False])
def test_shared_ln1_equals_stock(name, fast_attention, request):
    model = request.getfixturevalue(name)
    ids, mask = _ids(model)
    on = generate(model, ids, 8, attention_mask=mask, eos_token_ids=[], fast_attention=fast_attention)
    off = generate(
        model, ids, 8, attention_mask=mask, eos_token_ids=[], fast_attention=fast_attention, shared_ln1=False
    )
    assert torch.equal(on.tokens, off.tokens)
    torch.testing.assert_close(on.probs, off.probs, rtol=0, atol=0)  # the same computation


def test_ln1_computed_once_per_block(tiny_llama):
    calls = []
    ln1 = tiny_llama.blocks[1].ln1
    real = type(ln1).forward

    def spy(self, x):
        calls.append(x.shape)
        return real(self, x)

    ids, mask = _ids(tiny_llama)
    type(ln1).forward = spy
    try:
        # the stock forward on every step (the lean decode step calls no norm module)
        generate(tiny_llama, ids, 3, attention_mask=mask, eos_token_ids=[], lean_decode=False)
        on = len(calls)
        calls.clear()
        generate(tiny_llama, ids, 3, attention_mask=mask, eos_token_ids=[], shared_ln1=False, lean_decode=False)
        off = len(calls)
    finally:
        type(ln1).forward = real
    # every block's ln1 (RMSNorm class shared by all blocks and ln2): 3 ln1 -> 1 per block
    n = tiny_llama.cfg.n_layers
    assert off - on == 2 * n * 3  # 3 forwards (prefill + 2 decode steps)


@pytest.mark.parametrize("name", ["tiny_llama", "tiny_gemma2"])
def test_hooks_inside_ln1_see_every_call(name, request):
    model = request.getfixturevalue(name)
    names = ("blocks.0.ln1.hook_scale", "blocks.1.ln1.hook_normalized")
    on, seen_on = _ln1_counts(model, True, names)
    off, seen_off = _ln1_counts(model, False, names)
    assert torch.equal(on.tokens, off.tokens)
    for n in names:
        assert len(seen_on[n]) == len(seen_off[n]) == 3 * 4  # q, k, v inputs x 4 forwards
        for a, b in zip(seen_on[n], seen_off[n], strict=True):
            assert torch.equal(a, b)


def test_module_hook_on_ln1_sees_every_call(tiny_llama):
    calls = []
    handle = tiny_llama.blocks[0].ln1.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        ids, mask = _ids(tiny_llama)
        generate(tiny_llama, ids, 2, attention_mask=mask, eos_token_ids=[])
    finally:
        handle.remove()
    assert len(calls) == 3 * 2


def test_model_clean_after_generate_and_exception(tiny_llama):
    before = [dict(vars(b.ln1)) for b in tiny_llama.blocks]
    during = []

    def spy(t, hook):
        during.append(all("forward" in vars(b.ln1) for b in tiny_llama.blocks))
        return t

    ids, mask = _ids(tiny_llama)
    with tiny_llama.hooks(fwd_hooks=[("hook_embed", spy)]):
        generate(tiny_llama, ids, 2, attention_mask=mask, eos_token_ids=[])
    assert during == [True, True]

    def boom(t, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError), tiny_llama.hooks(fwd_hooks=[("blocks.1.hook_resid_post", boom)]):
        generate(tiny_llama, ids, 2, attention_mask=mask, eos_token_ids=[])
    assert [dict(vars(b.ln1)) for b in tiny_llama.blocks] == before
    with shared_ln1(tiny_llama) as installed:
        assert installed
    assert all("forward" not in vars(b.ln1) for b in tiny_llama.blocks)


@pytest.mark.parametrize("do_sample", [False, True])
@pytest.mark.parametrize("bad_step", [0, 1, 3])
def test_nonfinite_logits_still_raise_at_the_right_step(tiny_llama, do_sample, bad_step):
    """The finiteness check folded into the per-step stop sync names the same step."""
    ids, mask = _ids(tiny_llama)
    forwards = []

    def poison(t, hook):
        forwards.append(1)
        if len(forwards) == bad_step + 1:
            return t * float("nan")
        return t

    gen = torch.Generator().manual_seed(0)
    with tiny_llama.hooks(fwd_hooks=[("blocks.2.hook_resid_post", poison)]):
        with pytest.raises(NumericalError) as err:
            generate(
                tiny_llama, ids, 6, attention_mask=mask, eos_token_ids=[], do_sample=do_sample, generator=gen
            )
    where = "the prefill" if bad_step == 0 else f"decode step {bad_step}"
    assert where in str(err.value)
    assert forwards == [1] * (bad_step + 1)  # no forward after the bad one
