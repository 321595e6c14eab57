"""layout.py: the fast weight layout changes strides, never values."""

from __future__ import annotations

import pytest
import torch

from selfie_tl.models import optimize_layout
from selfie_tl.models.layout import allocate_fast_layout, storage_permutation
from selfie_tl.testing import tiny_model


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_optimize_layout_changes_strides_not_values(arch):
    reference, model = tiny_model(arch, seed=3), tiny_model(arch, seed=3)
    optimize_layout(model)
    for (name, a), (_, b) in zip(reference.named_parameters(), model.named_parameters()):
        assert torch.equal(a, b), name
    ids = torch.tensor([model.tokenizer("layout").input_ids])
    torch.testing.assert_close(model(ids), reference(ids), rtol=0, atol=1e-5)
    assert model.unembed.W_U.T.is_contiguous()
    if arch == "llama":
        assert model.blocks[0].mlp.W_gate.T.is_contiguous()
        assert model.blocks[0].attn.W_Q.permute(0, 2, 1).is_contiguous()
        assert model.blocks[0].attn.W_O.permute(2, 0, 1).is_contiguous()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_storage_permutation_matches_the_layout(arch):
    model = allocate_fast_layout(tiny_model(arch))
    gated = model.cfg.gated_mlp
    permuted = 0
    for name, param in model.named_parameters():
        perm = storage_permutation(name, gated)
        if perm is not None:
            assert param.permute(perm).is_contiguous(), name
            permuted += 1
    assert permuted > model.cfg.n_layers  # attention (and gated MLP) weights, W_U
    assert storage_permutation("blocks.0.mlp.W_in", gated_mlp=False) is None
