"""Tiny models of several architectures, with non-zero biases, for exact decompositions."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from selfie_tl.models import attach_tokenizer
from selfie_tl.testing import SPECIAL_TOKENS, tiny_model, tiny_tokenizer


def randomize_biases(model: HookedTransformer, seed: int = 1) -> HookedTransformer:
    """Every bias (b_O, b_out, b_V, b_in, ...) drawn at random, so that the sums test them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.split(".")[-1].lstrip("_").startswith("b_"):
                param.copy_(0.3 * torch.randn(param.shape, generator=gen))
    return model


def parallel_model(seed: int = 0) -> HookedTransformer:
    """GPT-J / NeoX-like: attention and MLP read the same residual, in parallel."""
    cfg = HookedTransformerConfig(
        n_layers=3, d_model=64, d_head=16, n_heads=4, d_mlp=128, d_vocab=256 + len(SPECIAL_TOKENS),
        n_ctx=128, act_fn="gelu_new", normalization_type="LN", positional_embedding_type="rotary",
        rotary_dim=8, parallel_attn_mlp=True, seed=seed, default_prepend_bos=False,
        model_name="tiny-parallel", initializer_range=0.2,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = HookedTransformer(cfg)
    attach_tokenizer(model, tiny_tokenizer())
    return model.eval()


def attn_result_model(seed: int = 0) -> HookedTransformer:
    """A GPT-2-like model with use_attn_result=True, whose hook_result checks head writes."""
    model = tiny_model("gpt2", seed=seed)
    model.cfg.use_attn_result = True
    return model


def ungrouped_llama(seed: int = 0) -> HookedTransformer:
    """Llama-like with GQA whose hook_v has one entry per query head."""
    model = tiny_model("llama", seed=seed)
    model.cfg.ungroup_grouped_query_attention = True
    return model


ARCHS = {
    "gpt2": lambda: tiny_model("gpt2"),
    "llama_gqa": lambda: tiny_model("llama"),
    "parallel": parallel_model,
}


@pytest.fixture(scope="module", params=list(ARCHS))
def arch_model(request) -> HookedTransformer:
    """One float32 model per architecture, with random biases."""
    model = randomize_biases(ARCHS[request.param]())
    assert model.cfg.dtype == torch.float32
    return model
