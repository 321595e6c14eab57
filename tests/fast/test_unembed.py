"""Unembedding in column blocks: bit-identical to ``model.unembed``, taken only on the CPU
without autograd and with nothing attached, switchable off."""

import pytest
import torch
from transformer_lens import HookedTransformer

from selfie_tl.fast import unembed as unembed_mod
from selfie_tl.fast.unembed import unembed, uses_blocks
from selfie_tl.generation import final_logits, generate
from selfie_tl.testing import tiny_model, wide_model

VOCAB = 2500  # more than CHUNK_COLUMNS: blocks of 1,024, 1,024 and a ragged 452


def _wide(arch: str, dtype=torch.float32) -> HookedTransformer:
    model = wide_model(arch, d_vocab=VOCAB, seed=1, dtype=dtype)
    if arch == "gpt2":  # a nonzero bias, so that its slicing is checked too
        with torch.no_grad():
            model.unembed.b_U.normal_(0, 1.0)
    return model


@pytest.fixture(scope="module", params=["llama", "gpt2", "gemma2"])
def model(request):
    return _wide(request.param)


@pytest.mark.parametrize("shape", [(1, 64), (5, 64), (3, 1, 64), (2, 7, 64), (130, 64)])
def test_bit_identical_to_stock(model, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert uses_blocks(model, x)
        assert torch.equal(unembed(model, x), model.unembed(x))


def test_bfloat16_bit_identical():
    model = _wide("llama", torch.bfloat16)
    x = torch.randn(6, 2, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        assert uses_blocks(model, x)
        assert torch.equal(unembed(model, x), model.unembed(x))


def test_switched_off_gives_the_same_logits(model, monkeypatch):
    x = torch.randn(3, 2, 64)
    with torch.no_grad():
        on = final_logits(model, x)
        monkeypatch.setattr(unembed_mod, "CHUNK_COLUMNS", None)
        assert not uses_blocks(model, x)
        assert torch.equal(on, final_logits(model, x))


def test_generate_tokens_and_probs_unchanged(model, monkeypatch):
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    on = generate(model, ids, 6, eos_token_ids=[])
    monkeypatch.setattr(unembed_mod, "CHUNK_COLUMNS", None)
    off = generate(model, ids, 6, eos_token_ids=[])
    assert torch.equal(on.tokens, off.tokens)
    assert torch.equal(on.probs, off.probs)


@pytest.mark.parametrize("where", ["hook_in", "hook_out"])
def test_a_hook_on_the_unembedding_sees_the_stock_tensors(model, where):
    x = torch.randn(2, 1, 64)
    seen = []
    with torch.no_grad(), model.hooks(fwd_hooks=[(f"unembed.{where}", lambda t, hook: seen.append(t.clone()))]):
        assert not uses_blocks(model, x)
        out = final_logits(model, x)
    assert len(seen) == 1
    if where == "hook_out" and model.cfg.output_logits_soft_cap <= 0:
        assert torch.equal(seen[0], out)


def test_a_module_hook_on_the_unembedding_is_respected(model):
    calls = []
    handle = model.unembed.register_forward_hook(lambda mod, args, out: calls.append(out.shape))
    try:
        with torch.no_grad():
            final_logits(model, torch.randn(2, 1, 64))
    finally:
        handle.remove()
    assert calls == [torch.Size([2, 1, VOCAB])]


def test_autograd_keeps_the_stock_product(model):
    """Blocks would sum the input gradient in another order; with autograd the stock path runs."""
    x = torch.randn(2, 3, 64, requires_grad=True)
    assert not uses_blocks(model, x)
    with torch.no_grad():
        assert uses_blocks(model, x)
    model.unembed(x).sum().backward()
    ref = x.grad.clone()
    x.grad = None
    unembed(model, x).sum().backward()
    assert torch.equal(x.grad, ref)


def test_small_vocabularies_use_one_product():
    model = tiny_model()  # 259 columns, fewer than one block
    assert unembed_mod.CHUNK_COLUMNS == 1024
    with torch.no_grad():
        assert not uses_blocks(model, torch.zeros(1, 64))
