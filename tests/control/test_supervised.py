"""supervised_control on tiny models: both objectives, safety, determinism, bad input."""

from __future__ import annotations

import pytest
import torch

from selfie_tl.control import MLPEdit, SupervisedConfig, supervised_control
from selfie_tl.control._common import block_cache
from selfie_tl.errors import (
    InvalidArgumentError,
    LayerOutOfRangeError,
    PromptError,
    TrainingError,
    VectorError,
)
from selfie_tl.hooks import capture, hook_count
from selfie_tl.prompts import InterpretationPrompt

REFS = ["The weather is mild today.", "Numbers: 1 2 3"]
FAST = dict(verbose=False, max_steps=60, lr=0.05, patience=0)


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_embedding_objective_moves_source_to_target(tiny):
    before = capture(tiny, "The cat sat", layers=[2], positions=[-1])[0, 0]
    target = capture(tiny, "A red boat", layers=[2], positions=[-1])[0, 0]
    res = supervised_control(tiny, "The cat sat", "A red boat", layer=2, reference_texts=REFS, tol=0.01, **FAST)
    with res.edit.attached(tiny):
        after = capture(tiny, "The cat sat", layers=[2], positions=[-1])[0, 0]
    assert (after - target).norm() < 0.2 * (before - target).norm()
    assert res.history[0]["main"] == pytest.approx(1.0)  # relative MSE starts at 1
    assert res.losses[-1] < res.losses[0]
    assert res.stop_reason == "converged" and res.edit.info["objective"] == "embedding"


def test_preservation_term_keeps_references(tiny_llama):
    def ref_change(beta):
        res = supervised_control(tiny_llama, "The cat sat", "A red boat", layer=2, reference_texts=REFS,
                                 beta=beta, tol=0.0, **FAST)  # fmt: skip
        cache = block_cache(tiny_llama, [(t, "all") for t in REFS], 2)
        return res.edit.delta(cache.x).pow(2).mean().item(), res.history[-1]["preservation"]

    free, _ = ref_change(0.0)
    kept, logged = ref_change(10.0)
    assert kept < 0.5 * free
    assert logged == pytest.approx(kept, rel=1e-4)


def test_tensor_target_and_multiple_sources(tiny_gpt2):
    target = torch.randn(64, generator=torch.Generator().manual_seed(3))
    sources = [("The cat sat", [-1, -2]), "Dogs bark"]
    res = supervised_control(tiny_gpt2, sources, target, layer=1, tol=0.01, **FAST)
    cache = block_cache(tiny_gpt2, [("The cat sat", [-1, -2]), ("Dogs bark", -1)], 1)
    edited = cache.h + res.edit.delta(cache.x)
    start = (cache.h - target).pow(2).mean()
    assert (edited - target).pow(2).mean() < 0.05 * start


def test_interpretation_objective_raises_target_likelihood(tiny_llama):
    prompt = InterpretationPrompt(tiny_llama.tokenizer, ("Message: ", 0, 0, "\nMeaning:"))
    res = supervised_control(tiny_llama, "The cat sat", " ok", layer=2, objective="interpretation",
                             interpretation_prompt=prompt, k=1, reference_texts=REFS, verbose=False,
                             max_steps=25, lr=0.05, tol=0.0, patience=0)  # fmt: skip
    assert res.history[-1]["main"] < 0.7 * res.history[0]["main"]
    assert len(res.history) == 25 and hook_count(tiny_llama) == 0


def test_base_weights_bit_identical_and_hooks_clean(tiny_llama):
    before = _params(tiny_llama)
    flags = {n: p.requires_grad for n, p in tiny_llama.named_parameters()}
    supervised_control(tiny_llama, "The cat sat", "A red boat", layer=3, reference_texts=REFS, **FAST)
    supervised_control(tiny_llama, "The cat sat", " ok", layer=1, objective="interpretation", k=0,
                       verbose=False, max_steps=3)  # fmt: skip
    for name, p in tiny_llama.named_parameters():
        assert torch.equal(p, before[name]), name
        assert p.grad is None and p.requires_grad == flags[name]
    assert hook_count(tiny_llama) == 0


def test_seeded_runs_are_identical(tiny_gpt2):
    runs = [supervised_control(tiny_gpt2, "The cat sat", "A red boat", layer=2, seed=7, **FAST) for _ in range(2)]
    assert runs[0].losses == runs[1].losses
    for a, b in zip(runs[0].edit.parameters(), runs[1].edit.parameters(), strict=True):
        assert torch.equal(a, b)
    other = supervised_control(tiny_gpt2, "The cat sat", "A red boat", layer=2, seed=8, **FAST)
    assert not torch.equal(other.edit.A, runs[0].edit.A)


def test_early_stop_by_patience(tiny_gpt2):
    res = supervised_control(tiny_gpt2, "The cat sat", "A red boat", layer=2, verbose=False, max_steps=500,
                             lr=1e-9, tol=0.0, patience=5)  # fmt: skip
    assert res.stop_reason == "patience" and len(res.history) < 20


def test_config_round_trip():
    cfg = SupervisedConfig(objective="interpretation", lr=0.3, k=4)
    assert SupervisedConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InvalidArgumentError, match="unknown"):
        SupervisedConfig.from_dict({"learning_rate": 1})


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(layer=0), LayerOutOfRangeError),
        (dict(layer=4), LayerOutOfRangeError),
        (dict(source=[]), InvalidArgumentError),
        (dict(source=""), PromptError),
        (dict(target=""), PromptError),
        (dict(target=[]), PromptError),
        (dict(target=torch.zeros(63)), VectorError),
        (dict(target=torch.full((64,), float("nan"))), VectorError),
        (dict(lr=0.0), InvalidArgumentError),
        (dict(lr=-1.0), InvalidArgumentError),
        (dict(max_steps=0), InvalidArgumentError),
        (dict(objective="logits"), InvalidArgumentError),
        (dict(objective="interpretation", target=torch.zeros(64)), PromptError),
    ],
)
def test_bad_input(tiny_llama, kwargs, error):
    args = dict(source="The cat", target="A dog", layer=2, verbose=False, max_steps=2) | kwargs
    with pytest.raises(error):
        supervised_control(tiny_llama, **args)
    assert hook_count(tiny_llama) == 0


def test_nan_loss_restores_last_finite_state(tiny_llama):
    before = _params(tiny_llama)
    edit = MLPEdit.for_model(tiny_llama, layer=2, rank=4)
    warm = supervised_control(tiny_llama, "The cat", "A dog", layer=2, edit=edit, **FAST)
    good = {k: v.clone() for k, v in warm.edit.state_dict().items()}
    with pytest.raises(TrainingError, match="restored"):
        supervised_control(tiny_llama, "The cat", "A dog", layer=2, edit=edit, verbose=False, lr=1e30,
                           max_steps=50, tol=0.0, patience=0)  # fmt: skip
    state = edit.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values())
    # the first huge step produced parameters whose loss overflowed: back to the warm state
    assert all(torch.equal(state[k], good[k]) for k in good)
    assert hook_count(tiny_llama) == 0 and not edit.is_attached
    for name, p in tiny_llama.named_parameters():
        assert torch.equal(p, before[name])


def test_attached_edit_rejected(tiny_llama):
    edit = MLPEdit.for_model(tiny_llama, layer=2)
    with edit.attached(tiny_llama):
        with pytest.raises(InvalidArgumentError, match="detach"):
            supervised_control(tiny_llama, "The cat", "A dog", layer=2, edit=edit, verbose=False)
    with pytest.raises(InvalidArgumentError, match="layer"):
        supervised_control(tiny_llama, "The cat", "A dog", layer=1, edit=edit, verbose=False)
