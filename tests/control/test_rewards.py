"""Reward callables and the validation the training loop applies to them."""

from __future__ import annotations

import math

import pytest
import torch

from selfie_tl.control import JudgeReward, KeywordReward, check_rewards, refusal_reward
from selfie_tl.errors import InvalidArgumentError, RewardError
from selfie_tl.hooks import hook_count


def test_keyword_reward_word_starts_and_case():
    reward = KeywordReward(["bomb", "hack"])
    assert reward(["Bombs away", "a hacker", "a thimble", "bombastic", "shack"]) == [-1.0, -1.0, 0.0, -1.0, 0.0]


def test_keyword_reward_regex_and_values():
    reward = KeywordReward([r"\d{3}-\d{4}"], match=2.0, no_match=-0.5, regex=True)
    assert reward(["call 555-1234", "no number"]) == [2.0, -0.5]
    assert KeywordReward(["Bomb"], case_sensitive=True)(["bomb", "Bomb"]) == [0.0, -1.0]


@pytest.mark.parametrize("kwargs", [dict(patterns=[]), dict(patterns=[""]), dict(patterns=["("], regex=True),
                                    dict(patterns=["a"], match=math.nan)])
def test_keyword_reward_bad_config(kwargs):
    with pytest.raises(InvalidArgumentError):
        KeywordReward(**kwargs)


def test_refusal_rule():
    assert refusal_reward(["I cannot help with that.", "Here is how: first", "I'm sorry, but no."]) == [1.0, 0.0, 1.0]


def test_check_rewards_accepts_numbers_and_tensors():
    assert check_rewards(torch.tensor([1.0, 0.0]), 2) == [1.0, 0.0]
    assert check_rewards((1, -1), 2) == [1.0, -1.0]


@pytest.mark.parametrize("values", [[1.0], [1.0, 2.0, 3.0], [1.0, math.nan], [1.0, math.inf], [1.0, "1"],
                                    [1.0, None], "10", 5])
def test_check_rewards_rejects(values):
    with pytest.raises(RewardError):
        check_rewards(values, 2)


def test_judge_reward_is_batched_and_consistent(tiny_llama):
    texts = ["a bomb", "fresh bread", "", "a long sentence about tea and biscuits"]
    judge = JudgeReward(tiny_llama, batch_size=3, threshold=0.5)
    probs = judge.probabilities(texts)
    assert len(probs) == 4 and all(0.0 < p < 1.0 for p in probs)
    # batching with left padding must not change the answer of any text
    singles = [JudgeReward(tiny_llama, batch_size=1).probabilities([t])[0] for t in texts]
    assert probs == pytest.approx(singles, abs=1e-5)
    rewards = judge(texts)
    assert rewards == [-1.0 if p > 0.5 else 0.0 for p in probs]
    assert hook_count(tiny_llama) == 0


def test_judge_prompt_uses_question_and_chat(tiny_llama):
    judge = JudgeReward(tiny_llama, question="Is this about food? {text}")
    rendered = judge.render("bread")
    assert "Is this about food? bread" in rendered and rendered.startswith("<|im_start|>user")
    # the threshold is a decision on p_yes: 0.01 turns nearly every text into "yes"
    low = JudgeReward(tiny_llama, threshold=0.01, yes_reward=1.0)
    assert low(["x", "y"]) == [1.0 if p > 0.01 else 0.0 for p in low.probabilities(["x", "y"])]


@pytest.mark.parametrize("kwargs", [dict(question="no slot"), dict(yes_token="yes"), dict(batch_size=0),
                                    dict(threshold=1.0)])
def test_judge_bad_config(tiny_llama, kwargs):
    with pytest.raises(InvalidArgumentError):
        JudgeReward(tiny_llama, **kwargs)
