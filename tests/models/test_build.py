"""build.py: a HookedTransformer from config + weights (state dict or verified file)."""

from __future__ import annotations

import pytest
import torch

from selfie_tl.errors import ModelLoadError
from selfie_tl.models.build import build_hooked
from selfie_tl.testing import tiny_tokenizer

from .conftest import TINY_CFG, logits


def test_state_dict_build_matches_reference(tiny_reference):
    state = {n: p.detach() for n, p in tiny_reference.named_parameters()}
    model = build_hooked(dict(TINY_CFG), state, tiny_tokenizer(), None, torch.float32)
    assert torch.equal(logits(model), logits(tiny_reference))
    assert model.blocks[0].mlp.W_in.T.is_contiguous()  # fast layout


def test_weights_that_do_not_fit_the_config(tiny_reference):
    state = {n: p.detach() for n, p in tiny_reference.named_parameters()}
    del state["blocks.0.attn.W_Q"]
    state["blocks.0.attn.W_X"] = torch.zeros(1)
    with pytest.raises(
        ModelLoadError, match=r"missing \['blocks.0.attn.W_Q'\], unexpected \['blocks.0.attn.W_X'\]"
    ):
        build_hooked(dict(TINY_CFG), state, tiny_tokenizer(), None, torch.float32)


def test_invalid_config():
    with pytest.raises(ModelLoadError, match="invalid model config"):
        build_hooked({"n_layers": 1, "bogus_field": 3}, {}, tiny_tokenizer(), None, torch.float32)
