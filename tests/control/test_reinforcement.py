"""reinforcement_control on tiny models: the loss's gradient, reward plumbing, safety."""

from __future__ import annotations

import pytest
import torch

from selfie_tl.control import MLPEdit, ReinforcementConfig, reinforcement_control, reinforcement_loss
from selfie_tl.control._common import block_cache
from selfie_tl.errors import InvalidArgumentError, LayerOutOfRangeError, PromptError, RewardError
from selfie_tl.hooks import hook_count

PROMPTS = ["a bomb", "tea"]  # 6 + 3 byte tokens
FAST = dict(verbose=False, max_new_tokens=3, steps=2, lr=0.05)


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


class Recorder:
    """A reward that records what it was asked and returns fixed values."""

    def __init__(self, value=-1.0, fail_at=None, bad=None):
        self.calls, self.value, self.fail_at, self.bad = [], value, fail_at, bad

    def __call__(self, texts):
        self.calls.append(list(texts))
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            return self.bad(texts)
        return [self.value] * len(texts)


def test_loss_gradient_matches_formula(tiny_llama):
    cache = block_cache(tiny_llama, [(p, "all") for p in PROMPTS], 2)
    h = cache.h.clone().requires_grad_(True)
    r = torch.tensor([-1.0, 1.0, 0.0, -1.0, 1.0, 0.0, -1.0, 1.0, 0.0])
    loss = reinforcement_loss(h, r)
    loss.backward()
    expected = -(r[:, None] * cache.h / cache.h.pow(2).sum(-1, keepdim=True)) / len(r)
    assert torch.allclose(h.grad, expected, atol=1e-7)
    assert loss.item() == pytest.approx(-r.mean().item(), abs=1e-6)
    # gradient descent moves each h_i along itself with the sign of R_i
    moved = (-h.grad * cache.h).sum(-1)
    assert torch.equal(torch.sign(moved), torch.sign(r))


def test_edit_gradient_is_chain_rule_of_formula(tiny_gpt2):
    cache = block_cache(tiny_gpt2, [(p, "all") for p in PROMPTS], 1)
    edit = MLPEdit.for_model(tiny_gpt2, layer=1, rank=4)
    with torch.no_grad():
        edit.B.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    r = torch.linspace(-1, 1, cache.x.shape[0])
    reinforcement_loss(cache.h + edit.delta(cache.x), r).backward()
    h = (cache.h + edit.delta(cache.x)).detach()
    g = -(r[:, None] * h / h.pow(2).sum(-1, keepdim=True)) / len(r)  # dL/dh from the formula
    assert torch.allclose(edit.B.grad, (cache.x @ edit.A).T.detach() @ g, atol=1e-6)


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_training_shrinks_or_grows_embeddings(tiny_llama, sign):
    cache = block_cache(tiny_llama, [(p, "all") for p in PROMPTS], 2)
    res = reinforcement_control(tiny_llama, PROMPTS, 2, Recorder(sign), **(FAST | dict(steps=4)))
    edited = cache.h + res.edit.delta(cache.x)
    along = ((edited * cache.h).sum(-1) / cache.h.pow(2).sum(-1)).mean().item()
    assert (along - 1.0) * sign > 0.01  # moved along itself in the reward's direction
    assert [row["mean_reward"] for row in res.history] == [sign] * 4


def test_reward_sees_interpretations_of_every_token(tiny_llama):
    reward = Recorder(0.0)
    res = reinforcement_control(tiny_llama, PROMPTS, 2, reward, **FAST)
    assert [len(c) for c in reward.calls] == [9, 9] and all(isinstance(t, str) for t in reward.calls[0])
    assert res.history[0]["samples"][0]["token"] == "a" and res.history[0]["n"] == 9
    sampled = Recorder(0.0)
    reinforcement_control(tiny_llama, PROMPTS, 2, sampled, embeddings_per_step=4, **FAST)
    assert [len(c) for c in sampled.calls] == [4, 4]


def test_judge_reward_runs_with_edit_detached(tiny_llama):
    seen = []

    def reward(texts):
        seen.append(hook_count(tiny_llama))
        return [-1.0] * len(texts)

    reinforcement_control(tiny_llama, PROMPTS, 2, reward, **FAST)
    assert seen == [0, 0]


def test_seeded_runs_are_identical(tiny_gpt2):
    def run(seed):
        return reinforcement_control(tiny_gpt2, PROMPTS, 2, Recorder(-1.0), seed=seed, embeddings_per_step=5,
                                     **(FAST | dict(steps=3)))  # fmt: skip

    a, b, c = run(3), run(3), run(4)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert [r["samples"] for r in a.history] == [r["samples"] for r in b.history]
    assert torch.equal(a.edit.B, b.edit.B) and not torch.equal(a.edit.B, c.edit.B)


def test_target_reward_stops_early(tiny_gpt2):
    res = reinforcement_control(tiny_gpt2, PROMPTS, 2, Recorder(0.0), target_reward=0.0, **(FAST | dict(steps=5)))
    assert res.stop_reason == "target_reward" and len(res.history) == 1
    assert torch.count_nonzero(res.edit.B) == 0  # the step that met the target made no update


@pytest.mark.parametrize(
    "bad",
    [lambda t: [0.0] * (len(t) + 1), lambda t: [float("nan")] * len(t), lambda t: ["x"] * len(t), lambda t: None],
)
def test_bad_reward_keeps_last_good_state(tiny_llama, bad):
    before = _params(tiny_llama)
    one = reinforcement_control(tiny_llama, PROMPTS, 2, Recorder(-1.0), **(FAST | dict(steps=1)))
    edit = MLPEdit.for_model(tiny_llama, layer=2, rank=8)
    with pytest.raises(RewardError):
        reinforcement_control(tiny_llama, PROMPTS, 2, Recorder(-1.0, fail_at=2, bad=bad), edit=edit, **FAST)
    for a, b in zip(edit.parameters(), one.edit.parameters(), strict=True):
        assert torch.equal(a, b)  # exactly the state after the one good step
    assert hook_count(tiny_llama) == 0 and not edit.is_attached
    for name, p in tiny_llama.named_parameters():
        assert torch.equal(p, before[name]) and p.grad is None


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(prompts=[]), InvalidArgumentError),
        (dict(prompts=[""]), PromptError),
        (dict(layer=0), LayerOutOfRangeError),
        (dict(layer=4), LayerOutOfRangeError),
        (dict(steps=0), InvalidArgumentError),
        (dict(lr=0.0), InvalidArgumentError),
        (dict(reward="not callable"), InvalidArgumentError),
        (dict(k=3), LayerOutOfRangeError),
    ],
)
def test_bad_input(tiny_llama, kwargs, error):
    args = dict(prompts=PROMPTS, layer=2, reward=Recorder(), verbose=False) | kwargs
    with pytest.raises(error):
        reinforcement_control(tiny_llama, **args)
    assert hook_count(tiny_llama) == 0


def test_config_round_trip():
    cfg = ReinforcementConfig(steps=3, embeddings_per_step=8, target_reward=0.0)
    assert ReinforcementConfig.from_dict(cfg.to_dict()) == cfg
