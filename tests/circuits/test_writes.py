"""Exact decompositions of the residual stream into component writes (float32)."""

from __future__ import annotations

import pytest
import torch

from selfie_tl.circuits import (
    Component,
    component_writes,
    hooks_needed,
    kv_head,
    list_components,
    parse_component,
)
from selfie_tl.errors import InvalidArgumentError, LayerOutOfRangeError, PositionOutOfRangeError
from selfie_tl.hooks import hook_count
from tests.circuits.conftest import attn_result_model, randomize_biases, ungrouped_llama

PROMPT = "The cat sat on"
ATOL = 1e-5


def run(model, prompt=PROMPT):
    ids = torch.tensor(model.tokenizer(prompt).input_ids)[None]
    _, cache = model.run_with_cache(ids)
    return cache


@pytest.mark.parametrize("position", [0, 5, -1])
def test_heads_plus_b_O_equal_attn_out(arch_model, position):
    cache = run(arch_model)
    for layer in range(arch_model.cfg.n_layers):
        heads = component_writes(arch_model, cache, layer, "head", position)
        attn = component_writes(arch_model, cache, layer, "attn", position).vectors[0]
        assert heads.vectors.shape == (arch_model.cfg.n_heads, arch_model.cfg.d_model)
        b_O = arch_model.blocks[layer].attn.b_O
        assert b_O.abs().max() > 0  # the bias is really in the sum
        torch.testing.assert_close(heads.vectors.sum(0) + b_O, attn, atol=ATOL, rtol=0)


@pytest.mark.parametrize("position", [0, -1])
def test_neurons_plus_b_out_equal_mlp_out(arch_model, position):
    cache = run(arch_model)
    every = range(arch_model.cfg.d_mlp)
    for layer in range(arch_model.cfg.n_layers):
        neurons = component_writes(arch_model, cache, layer, "neuron", position, neurons=every)
        mlp = component_writes(arch_model, cache, layer, "mlp", position).vectors[0]
        b_out = arch_model.blocks[layer].mlp.b_out
        assert b_out.abs().max() > 0
        torch.testing.assert_close(neurons.vectors.sum(0) + b_out, mlp, atol=ATOL, rtol=0)


@pytest.mark.parametrize("position", [3, -1])
def test_sources_sum_to_the_head_write(arch_model, position):
    cache = run(arch_model)
    n_heads = arch_model.cfg.n_heads
    for layer in range(arch_model.cfg.n_layers):
        heads = component_writes(arch_model, cache, layer, "head", position)
        sources = component_writes(arch_model, cache, layer, "source", position)
        dst = heads.position
        assert len(sources) == n_heads * (dst + 1)  # every source up to the destination
        per_head = sources.vectors.reshape(n_heads, dst + 1, -1).sum(1)
        torch.testing.assert_close(per_head, heads.vectors, atol=ATOL, rtol=0)


def test_embed_plus_every_write_is_the_residual(arch_model):
    cache = run(arch_model)
    every = range(arch_model.cfg.d_mlp)
    total = component_writes(arch_model, cache, None, "embed", -1).vectors[0]
    torch.testing.assert_close(total, cache["blocks.0.hook_resid_pre"][0, -1], atol=ATOL, rtol=0)
    for layer in range(arch_model.cfg.n_layers):
        block = arch_model.blocks[layer]
        heads = component_writes(arch_model, cache, layer, "head", -1).vectors.sum(0) + block.attn.b_O
        neurons = component_writes(arch_model, cache, layer, "neuron", -1, neurons=every).vectors.sum(0)
        total = total + heads + neurons + block.mlp.b_out
        torch.testing.assert_close(total, cache[f"blocks.{layer}.hook_resid_post"][0, -1], atol=1e-4, rtol=0)


def test_gpt2_embed_includes_the_learned_positions(tiny_gpt2):
    cache = run(tiny_gpt2)
    embed = component_writes(tiny_gpt2, cache, None, "embed", 2).vectors[0]
    torch.testing.assert_close(embed, cache["hook_embed"][0, 2] + cache["hook_pos_embed"][0, 2])
    assert "hook_pos_embed" in hooks_needed(tiny_gpt2, [Component("embed", -1)])


def test_head_writes_match_hook_result():
    model = randomize_biases(attn_result_model())
    cache = run(model)
    for layer in range(model.cfg.n_layers):
        heads = component_writes(model, cache, layer, "head", -1).vectors
        torch.testing.assert_close(heads, cache[f"blocks.{layer}.attn.hook_result"][0, -1], atol=ATOL, rtol=0)


def test_gqa_maps_query_heads_to_kv_heads(tiny_llama):
    cache = run(tiny_llama)
    assert cache["blocks.0.attn.hook_v"].shape[-2] == tiny_llama.cfg.n_key_value_heads == 2
    assert [kv_head(tiny_llama, h) for h in range(4)] == [0, 0, 1, 1]
    # one source's contribution by hand, through the kv head
    layer, h, dst, src = 1, 3, 6, 2
    w_o = tiny_llama.blocks[layer].attn.W_O[h]
    expect = cache[f"blocks.{layer}.attn.hook_pattern"][0, h, dst, src] * (
        cache[f"blocks.{layer}.attn.hook_v"][0, src, 1] @ w_o
    )
    got = component_writes(tiny_llama, cache, layer, "source", dst, heads=[h], sources=[src]).vectors[0]
    torch.testing.assert_close(got, expect)


def test_ungrouped_gqa_sources_still_sum_to_heads():
    model = randomize_biases(ungrouped_llama())
    cache = run(model)
    assert cache["blocks.0.attn.hook_v"].shape[-2] == model.cfg.n_heads
    heads = component_writes(model, cache, 2, "head", -1)
    sources = component_writes(model, cache, 2, "source", -1)
    per_head = sources.vectors.reshape(model.cfg.n_heads, -1, model.cfg.d_model).sum(1)
    torch.testing.assert_close(per_head, heads.vectors, atol=ATOL, rtol=0)


def test_prompt_and_cache_give_the_same_writes(arch_model):
    cache = run(arch_model)
    kinds = ["head", "attn", "mlp", "neuron", "embed", "source"]
    from_cache = component_writes(arch_model, cache, [0, 2], kinds, -2, neurons=[1, 5])
    from_prompt = component_writes(arch_model, PROMPT, [0, 2], kinds, -2, neurons=[1, 5])
    assert from_cache.labels == from_prompt.labels
    torch.testing.assert_close(from_cache.vectors, from_prompt.vectors)
    assert hook_count(arch_model) == 0


def test_batched_cache_and_batch_index(tiny_llama):
    tok = tiny_llama.tokenizer
    ids = torch.tensor([tok("The cat").input_ids, tok("A dog!!").input_ids])
    _, cache = tiny_llama.run_with_cache(ids)
    second = component_writes(tiny_llama, cache, 1, "head", -1, batch_index=1).vectors
    torch.testing.assert_close(second, component_writes(tiny_llama, "A dog!!", 1, "head", -1).vectors)


def test_labels_order_and_unpacking(tiny_llama):
    vectors, labels = component_writes(tiny_llama, PROMPT, [2, 1], ["mlp", "head", "neuron"], heads=[3, 0],
                                       neurons=[7])  # fmt: skip
    assert labels == ["L2H3", "L2H0", "L2 MLP", "L2N7", "L1H3", "L1H0", "L1 MLP", "L1N7"]
    assert vectors.shape == (8, 64) and vectors.dtype == torch.float32
    assert [parse_component(label).label for label in labels] == labels
    sources = component_writes(tiny_llama, PROMPT, 0, "source", 4, heads=[1], sources=[0, -1])
    assert sources.labels == ["L0H1 src0", "L0H1 src13"]
    embed = component_writes(tiny_llama, PROMPT, None, ["embed"])
    assert embed.labels == ["embed"] and embed.components[0].layer == -1


def test_unit_neuron_directions(tiny_gpt2):
    w = component_writes(tiny_gpt2, PROMPT, 1, "neuron", neurons=[3, 9], unit=True)
    torch.testing.assert_close(w.norms, torch.ones(2))
    w_out = tiny_gpt2.blocks[1].mlp.W_out[3]
    torch.testing.assert_close(w.vectors[0], w_out / w_out.norm())
    assert w.unit and hooks_needed(tiny_gpt2, w.components, unit=True) == []


def test_list_components(tiny_llama):
    comps = list_components(tiny_llama, range(2), ["embed", "attn", "head"], heads=[1])
    assert [c.label for c in comps] == ["embed", "L0H1", "L0 attn", "L1H1", "L1 attn"]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: component_writes(m, PROMPT, 3, "head"), LayerOutOfRangeError, "block index 3"),
        (lambda m: component_writes(m, PROMPT, 1.5, "head"), LayerOutOfRangeError, "must be an int"),
        (lambda m: component_writes(m, PROMPT, 1, "neuron"), InvalidArgumentError, "neurons="),
        (lambda m: component_writes(m, PROMPT, 1, "neuron", neurons=[999]), InvalidArgumentError, "out of range"),
        (lambda m: component_writes(m, PROMPT, 1, "head", heads=[4]), InvalidArgumentError, "4 heads"),
        (lambda m: component_writes(m, PROMPT, 1, "heads", 99), PositionOutOfRangeError, "out of range"),
        (lambda m: component_writes(m, PROMPT, 1, "resid"), InvalidArgumentError, "unknown component kind"),
        (lambda m: component_writes(m, PROMPT, None, "mlp"), InvalidArgumentError, "layers are needed"),
        (lambda m: component_writes(m, 3, 1, "mlp"), InvalidArgumentError, "ActivationCache"),
        (lambda m: parse_component("layer 9 head 6"), InvalidArgumentError, "cannot read"),
    ],
)
def test_errors(tiny_llama, call, error, match):
    with pytest.raises(error, match=match):
        call(tiny_llama)


def test_missing_hook_in_cache(tiny_llama):
    ids = torch.tensor(tiny_llama.tokenizer(PROMPT).input_ids)[None]
    _, cache = tiny_llama.run_with_cache(ids, names_filter=lambda n: n.endswith("hook_z"))
    component_writes(tiny_llama, cache, 1, "head")  # enough for heads
    with pytest.raises(InvalidArgumentError, match="hook_mlp_out is not in the cache"):
        component_writes(tiny_llama, cache, 1, "mlp")


def test_explicit_component_list(arch_model):
    cache = run(arch_model)
    labels = ["L2 MLP", "embed", "L0H1", "L1N3", "L1H2 src4", "L0 attn"]
    picked = component_writes(arch_model, cache, None, components=labels, position=6)
    assert picked.labels == labels
    grid = component_writes(arch_model, cache, [0, 1, 2], ["head", "attn", "mlp", "neuron", "embed", "source"], 6,
                            neurons=[3])  # fmt: skip
    for label, vector in zip(picked.labels, picked.vectors, strict=True):
        torch.testing.assert_close(vector, grid.vectors[grid.labels.index(label)])
    with pytest.raises(InvalidArgumentError, match="not both"):
        component_writes(arch_model, cache, 1, components=labels)
    with pytest.raises(PositionOutOfRangeError):
        component_writes(arch_model, cache, None, components=["L1H2 src40"])
