"""Shared-prefix teacher forcing (selfie_tl.fast.prefix_sharing) and relevancy's use of it."""

import itertools

import pytest
import torch

import selfie_tl.fast.prefix_sharing as sharing
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.fast.prefix_sharing import plan_prefixes
from selfie_tl.relevancy import PromptBaseline, baseline_probs


def _brute_force_cost(tokens, stage_cost, max_stages):
    n = tokens.shape[1]
    width = [len({tuple(r[:j]) for r in tokens.tolist()}) for j in range(n + 1)]
    best = float("inf")
    for m in range(max_stages):
        for inner in itertools.combinations(range(1, n), m):
            cuts = [0, *inner, n]
            cost = sum((cuts[i + 1] - cuts[i]) * width[cuts[i + 1]] for i in range(len(cuts) - 1)) + stage_cost * m
            best = min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("stage_cost", [0, 3, 16])
def test_plan_is_the_cheapest_split_and_consistent(seed, stage_cost):
    g = torch.Generator().manual_seed(seed)
    batch, n = int(torch.randint(1, 9, (1,), generator=g)), int(torch.randint(1, 7, (1,), generator=g))
    tokens = torch.randint(0, 3, (batch, n), generator=g)  # a small vocabulary, so prefixes repeat
    plan = plan_prefixes(tokens, stage_cost=stage_cost, max_stages=3)
    stages = len(plan.rows)
    assert plan.cost + stage_cost * (stages - 1) == _brute_force_cost(tokens, stage_cost, 3)
    assert plan.cuts[0] == 0 and plan.cuts[-1] == n and plan.cuts == sorted(set(plan.cuts))
    for i in range(stages):
        end = plan.cuts[i + 1]
        reps = plan.rows[i]
        assert reps.tolist() == sorted(reps.tolist())  # first appearance order
        assert len({tuple(r) for r in tokens[reps, :end].tolist()}) == len(reps)  # distinct
        assert torch.equal(tokens[reps[plan.member[i]], :end], tokens[:, :end])  # every row is represented
        if i:
            start = plan.cuts[i]
            assert torch.equal(tokens[plan.rows[i - 1][plan.parent[i]], :start], tokens[reps, :start])


def test_plan_on_identical_and_on_distinct_rows():
    same = plan_prefixes(torch.tensor([[4, 5, 6]] * 5))
    assert same.cuts == [0, 3] and same.cost == 3 and same.member[0].tolist() == [0] * 5
    distinct = plan_prefixes(torch.tensor([[1, 2], [2, 2], [3, 2]]))
    assert distinct.cost == 6 and len(distinct.rows) == 1


@pytest.mark.parametrize("bad", [torch.zeros(3, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long)])
def test_plan_rejects_bad_shapes(bad):
    with pytest.raises(InvalidArgumentError, match=r"tokens must be \[batch, n\]"):
        plan_prefixes(bad)


def _generated(model, batch=6, steps=7, seed=0):
    """Continuations that share prefixes (and one exact duplicate), as interpretations do."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(3, model.cfg.d_vocab - 5, (batch, steps), generator=g)
    rows[1:4, :3] = rows[0, :3]  # a shared opening
    rows[4] = rows[0]  # a repeated interpretation
    return rows


@pytest.fixture(params=["llama", "gpt2", "gemma2"])
def arch_model(request, tiny_llama, tiny_gpt2, tiny_gemma2):
    return {"llama": tiny_llama, "gpt2": tiny_gpt2, "gemma2": tiny_gemma2}[request.param]


def test_shared_prefixes_equal_the_single_pass(arch_model, monkeypatch):
    model = arch_model
    prompt = model.to_tokens("ab cd")[0]
    base = PromptBaseline.build(model, prompt)
    keys = [e.past_keys.clone() for e in base.cache.entries]
    gen = _generated(model)
    calls = []
    real = sharing.forward_stages
    monkeypatch.setattr(
        "selfie_tl.relevancy.forward_stages", lambda *a, **k: calls.append(a[1]) or real(*a, **k)
    )  # fmt: skip
    monkeypatch.setattr(sharing, "STAGE_COST", 0)  # several stages even on these short rows
    stock = baseline_probs(model, prompt, gen, base, share_prefixes=False)
    assert not calls
    shared = baseline_probs(model, prompt, gen, base)
    assert calls and len(calls[0].rows) >= 2, "the shared path did not run several stages"
    torch.testing.assert_close(shared, stock, rtol=0, atol=1e-5)
    assert torch.equal(shared[4], shared[0])  # the duplicate row is the same computation
    # the prompt's cache is read, never written
    assert all(torch.equal(k, e.past_keys) for k, e in zip(keys, base.cache.entries))


def test_a_hook_sees_the_single_pass(tiny_llama, monkeypatch):
    monkeypatch.setattr(sharing, "STAGE_COST", 0)
    prompt = tiny_llama.to_tokens("ab")[0]
    gen = _generated(tiny_llama)
    seen = []
    with tiny_llama.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", lambda t, hook: seen.append(tuple(t.shape)))]):
        baseline_probs(tiny_llama, prompt, gen)
    # the prompt's own pass, then every row's continuation in one pass
    assert seen[-1] == (gen.shape[0], gen.shape[1] - 1, tiny_llama.cfg.d_model)


def test_no_sharing_when_it_would_not_pay(tiny_llama, monkeypatch):
    calls = []
    monkeypatch.setattr("selfie_tl.relevancy.forward_stages", lambda *a, **k: calls.append(1))
    prompt = tiny_llama.to_tokens("ab")[0]
    distinct = torch.arange(3, 3 + 4 * 5).reshape(4, 5)
    baseline_probs(tiny_llama, prompt, distinct)
    assert not calls
