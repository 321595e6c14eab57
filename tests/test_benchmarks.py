"""The benchmark's arithmetic floors count what the model computes."""

import sys
from pathlib import Path

import pytest

from selfie_tl.testing import tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_interpret import token_flops


def _matrix_weights(model) -> int:
    """Every weight matrix a position goes through in the blocks (grouped K/V counted once)."""
    total = 0
    for block in model.blocks:
        attn, mlp = block.attn, block.mlp
        w_k = getattr(attn, "_W_K", attn.W_K)
        w_v = getattr(attn, "_W_V", attn.W_V)
        total += attn.W_Q.numel() + w_k.numel() + w_v.numel() + attn.W_O.numel()
        total += sum(getattr(mlp, name).numel() for name in ("W_in", "W_gate", "W_out") if hasattr(mlp, name))
    return total


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_token_flops_are_two_per_weight_plus_attention_and_unembedding(arch):
    model = tiny_model(arch)
    cfg = model.cfg
    blocks = 2 * _matrix_weights(model)
    assert token_flops(cfg, 0, unembed=False) == blocks
    # each of n_heads heads: d_head multiply-adds for q.k and for pattern.v, per key
    assert token_flops(cfg, 10, unembed=False) - blocks == 10 * 2 * 2 * cfg.n_heads * cfg.d_head * cfg.n_layers
    assert token_flops(cfg, 0) - blocks == 2 * model.unembed.W_U.numel()
